"""Typed, versioned per-profile settings stored as ``settings.json``.

- ``schema_version`` says which layout a file has; :data:`MIGRATIONS` upgrades older files one
  version at a time (the original is kept as ``settings.json.bak-v<N>``).
- Writes are atomic (temporary file, fsync, rename, fsync of the folder).
- A file that cannot be used, whatever its shape (not JSON, not an object, wrong types, not UTF-8,
  larger than :data:`MAX_SETTINGS_BYTES`, a folder), is moved aside to
  ``settings.json.corrupt-<UTC time>`` and :class:`SettingsMovedAsideError` says so, naming the
  file and the problem; :func:`load_or_defaults` then goes on with the defaults. Heron never
  silently overwrites what a person wrote. Every file is written owner-only (0600).
- Secrets never live here; API keys go to the OS keyring (:mod:`app.secrets`).

To change the layout: bump :data:`SCHEMA_VERSION`, add ``_migrate_v<N>`` and register it in
:data:`MIGRATIONS`, update the dataclasses and :func:`from_dict`, and add a test that loads a file
of the previous version.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.lab_settings import LabSettings, lab_from_dict
from services.domain.enums import Mode
from services.domain.money import MAX_INT, InvalidNumberError, to_decimal
from services.domain.symbols import normalize_symbol
from services.storage.files import atomic_write_bytes

SCHEMA_VERSION = 4
THEMES = ("dark", "light")
#: Where times are shown (widgets.models.common.TimeDisplay): exchange time (New York), UTC, local.
TIME_ZONES = ("exchange", "utc", "local")

DEFAULT_SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY", "QQQ", "TSLA", "BTC/USD", "ETH/USD"]

#: Risk limits as the risk engine reads them. Decimal limits are strings (exact), ``None`` switches
#: a limit off, counts are ints, symbol lists are plain strings. Percentages are in percent (5 = 5 %).
DECIMAL_RISK_KEYS = (
    "max_order_qty",
    "max_order_notional",
    "price_band_pct",
    "max_position_qty",
    "max_gross_exposure",
    "max_net_exposure",
    "daily_loss_limit",
    "max_drawdown_pct",
)
INT_RISK_KEYS = ("max_open_orders", "max_orders_per_minute")
LIST_RISK_KEYS = ("symbol_allow", "symbol_deny")

DEFAULT_RISK: dict[str, Any] = {
    "max_order_qty": "1000",
    "max_order_notional": "100000",
    "price_band_pct": "5",
    "max_position_qty": "5000",
    "max_gross_exposure": "500000",
    "max_net_exposure": "250000",
    "daily_loss_limit": "5000",
    "max_drawdown_pct": "10",
    "max_open_orders": 50,
    "max_orders_per_minute": 60,
    "symbol_allow": [],
    "symbol_deny": [],
}

#: Alpaca stock data feeds: the live stream is ``/v2/iex`` or ``/v2/sip``; history takes ``feed=``.
#: Free plans stream IEX and get SIP history older than 15 minutes (Alpaca Market Data FAQ).
FEEDS = ("iex", "sip")

#: A settings file is a few kilobytes; anything above this is refused unread (and moved aside).
MAX_SETTINGS_BYTES = 1024 * 1024

_SECRET_KEYS = {"secret", "secret_key", "api_secret", "password", "key_id", "api_key"}


class SettingsError(Exception):
    """Settings could not be loaded or saved; the message is fit to show a person."""


class SettingsMovedAsideError(SettingsError):
    """The file could not be used and was moved aside (the message says where)."""

    def __init__(self, path: Path, problem: str, aside: Path) -> None:
        self.path, self.problem, self.aside = path, problem, aside
        super().__init__(
            f"the settings file {path} is invalid: {problem}. It was moved to {aside.name}; "
            "fix it and move it back, or start again to get fresh defaults"
        )


class SettingsTooNewError(SettingsError):
    """The file comes from a newer Heron; it is left exactly as it is."""


@dataclass
class UiSettings:
    confirm_orders: bool = True  # paper and local; live orders are always confirmed
    theme: str = "dark"
    time_zone: str = "exchange"  # one of TIME_ZONES
    #: command name → key sequence ("Ctrl+Shift+B"), only where it differs from Heron's default
    shortcuts: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalExchangeSettings:
    always_open: bool = True
    symbols: list[str] = field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    seed: int = 0


@dataclass
class MarketDataSettings:
    live_feed: str = "iex"  # the stock stream's feed; "sip" needs a SIP subscription
    history_feed: str = "sip"  # bars; with an iex live feed, SIP up to 15 minutes ago


@dataclass
class ChartSettings:
    #: indicator name -> {"on": bool, parameter: number}; the chart checks names and ranges
    indicators: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Settings:
    schema_version: int = SCHEMA_VERSION
    mode: Mode = Mode.LOCAL
    ui: UiSettings = field(default_factory=UiSettings)
    local_exchange: LocalExchangeSettings = field(default_factory=LocalExchangeSettings)
    risk: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_RISK)))
    watchlist: list[str] = field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    market_data: MarketDataSettings = field(default_factory=MarketDataSettings)
    chart: ChartSettings = field(default_factory=ChartSettings)
    lab: LabSettings = field(default_factory=LabSettings)

    def risk_decimal(self, key: str) -> Decimal | None:
        """A Decimal risk limit, or None when it is switched off."""
        if key not in DECIMAL_RISK_KEYS:
            raise KeyError(key)
        value = self.risk.get(key)
        return None if value is None else to_decimal(value, field=f"risk.{key}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = self.mode.value
        return data


# ---------------------------------------------------------------------------------------------
# Migrations: each takes the dict of version N and returns the dict of version N + 1.


def _migrate_v0(old: dict[str, Any]) -> dict[str, Any]:
    """v0 (unversioned prototype): flat keys ``mode``, ``confirm_orders``, ``theme``, ``symbols``."""
    new: dict[str, Any] = {"schema_version": 1}
    if "mode" in old:
        new["mode"] = old["mode"]
    ui: dict[str, Any] = {}
    if "confirm_orders" in old:
        ui["confirm_orders"] = old["confirm_orders"]
    if "theme" in old:
        ui["theme"] = old["theme"]
    new["ui"] = ui
    if "symbols" in old:
        new["watchlist"] = old["symbols"]
    return new


def _migrate_v1(old: dict[str, Any]) -> dict[str, Any]:
    """v1 had no risk section and kept the local exchange's symbols as one comma-separated string."""
    new = dict(old)
    new["schema_version"] = 2
    exch = dict(new.get("local_exchange") or {})
    if isinstance(exch.get("symbols"), str):
        exch["symbols"] = [s.strip() for s in exch["symbols"].split(",") if s.strip()]
    new["local_exchange"] = exch
    new.setdefault("risk", json.loads(json.dumps(DEFAULT_RISK)))
    return new


def _migrate_v2(old: dict[str, Any]) -> dict[str, Any]:
    """v2 had no market_data section: Heron streamed and fetched history from IEX."""
    new = dict(old)
    new["schema_version"] = 3
    new.setdefault("market_data", asdict(MarketDataSettings()))
    return new


def _migrate_v3(old: dict[str, Any]) -> dict[str, Any]:
    """v3 had no lab section: sweeps did not exist (the defaults run them on this computer)."""
    new = dict(old)
    new["schema_version"] = 4
    new.setdefault("lab", asdict(LabSettings()))
    return new


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _migrate_v0,
    1: _migrate_v1,
    2: _migrate_v2,
    3: _migrate_v3,
}


def migrate(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Upgrade ``data`` to :data:`SCHEMA_VERSION`; returns (new dict, version found in the file)."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SettingsError(f"schema_version must be a whole number, got {version!r}")
    if version > SCHEMA_VERSION:
        raise SettingsTooNewError(
            f"the settings file was written by a newer Heron (schema {version}, this one knows "
            f"{SCHEMA_VERSION}); it was left untouched"
        )
    found = version
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    return data, found


# ---------------------------------------------------------------------------------------------
# Validation


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise SettingsError(message)


def _bool(section: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = section.get(key, default)
    _require(isinstance(value, bool), f"{where}.{key} must be true or false, got {value!r}")
    return bool(value)


def _symbols(value: Any, where: str) -> list[str]:
    _require(isinstance(value, list), f"{where} must be a list of symbols, got {value!r}")
    out: list[str] = []
    for item in value:
        _require(isinstance(item, str) and item.strip() != "", f"{where} has an invalid symbol {item!r}")
        try:
            sym = normalize_symbol(item)
        except ValueError as exc:
            raise SettingsError(f"{where} has an invalid symbol {item!r}: {exc}") from None
        if sym not in out:
            out.append(sym)
    return out


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    _require(isinstance(value, dict), f"{key} must be an object, got {value!r}")
    return value


def _validate_risk(raw: dict[str, Any]) -> dict[str, Any]:
    known = set(DECIMAL_RISK_KEYS) | set(INT_RISK_KEYS) | set(LIST_RISK_KEYS)
    # A typo in a risk limit would silently switch it off: refuse unknown keys.
    unknown = sorted(set(raw) - known)
    _require(not unknown, f"risk has unknown limit(s) {unknown}; known limits: {sorted(known)}")
    out: dict[str, Any] = {}
    for key in DECIMAL_RISK_KEYS:
        value = raw.get(key, DEFAULT_RISK[key])
        if value is None:
            out[key] = None
            continue
        _require(
            isinstance(value, str),
            f'risk.{key} must be a decimal string such as "1000" (or null to switch it off), got {value!r}',
        )
        try:
            dec = to_decimal(value, field=f"risk.{key}")
        except InvalidNumberError as exc:
            raise SettingsError(str(exc)) from None
        _require(dec >= 0, f"risk.{key} must be zero or positive, got {value!r}")
        if key.endswith("_pct"):
            _require(dec <= 100, f"risk.{key} is a percentage and must be at most 100, got {value!r}")
        out[key] = value
    for key in INT_RISK_KEYS:
        value = raw.get(key, DEFAULT_RISK[key])
        _require(
            value is None
            or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT),
            f"risk.{key} must be a whole number from 0 to {MAX_INT} (or null), got {value!r}",
        )
        out[key] = value
    for key in LIST_RISK_KEYS:
        out[key] = _symbols(raw.get(key, []), f"risk.{key}")
    return out


def _find_secret_keys(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if str(k).lower() in _SECRET_KEYS:
                found.append(where)
            found.extend(_find_secret_keys(v, where))
    return found


def from_dict(data: dict[str, Any]) -> Settings:
    """Validate a current-version dict into :class:`Settings`; raises :class:`SettingsError`."""
    _require(isinstance(data, dict), "the settings file must hold a JSON object")
    secrets = _find_secret_keys(data)
    _require(not secrets, f"settings must never hold secrets, found {secrets}; keys belong in the OS keyring")
    known = {"schema_version", "mode", "ui", "local_exchange", "risk", "watchlist", "market_data", "chart",
             "lab"}  # fmt: skip
    unknown = sorted(set(data) - known)
    _require(not unknown, f"unknown setting(s) {unknown}")
    mode_text = data.get("mode", Mode.LOCAL.value)
    try:
        mode = Mode(mode_text)
    except ValueError:
        raise SettingsError(f"mode must be one of {[m.value for m in Mode]}, got {mode_text!r}") from None
    ui_raw = _section(data, "ui")
    theme = ui_raw.get("theme", "dark")
    _require(theme in THEMES, f"ui.theme must be one of {list(THEMES)}, got {theme!r}")
    zone = ui_raw.get("time_zone", "exchange")
    _require(zone in TIME_ZONES, f"ui.time_zone must be one of {list(TIME_ZONES)}, got {zone!r}")
    keys = ui_raw.get("shortcuts", {})
    _require(
        isinstance(keys, dict) and all(isinstance(k, str) and isinstance(v, str) and len(v) <= 40
                                       for k, v in keys.items()),
        f"ui.shortcuts must map command names to key sequences such as \"Ctrl+Shift+B\", got {keys!r}",
    )  # fmt: skip
    ui = UiSettings(
        confirm_orders=_bool(ui_raw, "confirm_orders", True, "ui"),
        theme=theme,
        time_zone=zone,
        shortcuts=keys,
    )
    ex_raw = _section(data, "local_exchange")
    seed = ex_raw.get("seed", 0)
    _require(
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_INT,
        f"local_exchange.seed must be a whole number from 0 to {MAX_INT}, got {seed!r}",
    )
    exchange = LocalExchangeSettings(
        always_open=_bool(ex_raw, "always_open", True, "local_exchange"),
        symbols=_symbols(ex_raw.get("symbols", list(DEFAULT_SYMBOLS)), "local_exchange.symbols"),
        seed=seed,
    )
    _require(exchange.symbols != [], "local_exchange.symbols must name at least one symbol")
    return Settings(
        schema_version=SCHEMA_VERSION,
        mode=mode,
        ui=ui,
        local_exchange=exchange,
        risk=_validate_risk(_section(data, "risk")),
        watchlist=_symbols(data.get("watchlist", list(DEFAULT_SYMBOLS)), "watchlist"),
        market_data=_market_data(_section(data, "market_data")),
        chart=_chart(_section(data, "chart")),
        lab=_lab(_section(data, "lab")),
    )


def _chart(raw: dict[str, Any]) -> ChartSettings:
    unknown = sorted(set(raw) - {"indicators"})
    _require(not unknown, f"chart has unknown setting(s) {unknown}")
    indicators = raw.get("indicators", {})
    _require(isinstance(indicators, dict), f"chart.indicators must be an object, got {indicators!r}")
    for name, state in indicators.items():
        _require(isinstance(state, dict), f"chart.indicators.{name} must be an object, got {state!r}")
        for key, value in state.items():
            ok = isinstance(value, bool) if key == "on" else _is_number(value)
            kind = "true or false" if key == "on" else "a number"
            _require(ok, f"chart.indicators.{name}.{key} must be {kind}, got {value!r}")
    return ChartSettings(indicators={name: dict(state) for name, state in indicators.items()})


def _lab(raw: dict[str, Any]) -> LabSettings:
    try:
        return lab_from_dict(raw)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _market_data(raw: dict[str, Any]) -> MarketDataSettings:
    defaults = MarketDataSettings()
    unknown = sorted(set(raw) - {"live_feed", "history_feed"})
    _require(not unknown, f"market_data has unknown setting(s) {unknown}")
    feeds: dict[str, str] = {}
    for key in ("live_feed", "history_feed"):
        value = raw.get(key, getattr(defaults, key))
        _require(value in FEEDS, f"market_data.{key} must be one of {list(FEEDS)}, got {value!r}")
        feeds[key] = value
    return MarketDataSettings(**feeds)


# ---------------------------------------------------------------------------------------------
# Files


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` so that ``path`` holds either the old or the new content, never half."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def save(settings: Settings, path: Path) -> None:
    try:
        atomic_write_text(path, json.dumps(settings.to_dict(), indent=2, sort_keys=False) + "\n")
    except OSError as exc:
        raise SettingsError(f"cannot write the settings file {path}: {exc.strerror or exc}") from exc


def _move_aside(path: Path, now: Callable[[], datetime]) -> Path:
    stamp = now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


def defaults_after_set_aside(path: Path) -> Path | None:
    """The copy of an unusable settings file moved aside when ``path`` was last written with the
    defaults in its place (no save since), or None. Live trading refuses to start on such defaults:
    the trader's own risk limits are in that copy, and the defaults may be looser."""
    try:
        written = path.stat().st_mtime
    except OSError:
        return None
    newest: tuple[float, Path] | None = None
    for aside in path.parent.glob(f"{path.name}.corrupt-*"):
        stamp = aside.name[len(path.name) + len(".corrupt-") :][:16]
        try:
            at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
        if newest is None or at > newest[0]:
            newest = (at, aside)
    # the defaults are saved within the second the copy was made; a later save is the trader's
    if newest is not None and written < newest[0] + 2.0:
        return newest[1]
    return None


class _Unusable(Exception):
    """The file is there but cannot be used; the message says why (moved aside by :func:`load`)."""


def _read_text(path: Path) -> str:
    """The file's text, read only after its size and kind are checked (never a FIFO or a giant)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise _Unusable("it is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise _Unusable("it is not a regular file")
    if info.st_size > MAX_SETTINGS_BYTES:
        raise _Unusable(f"it is {info.st_size:,} bytes, more than the {MAX_SETTINGS_BYTES:,}-byte limit")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SETTINGS_BYTES:
        raise _Unusable(f"it is more than the {MAX_SETTINGS_BYTES:,}-byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unusable(f"it is not UTF-8 text (byte {exc.start})") from None


def _parse(text: str) -> tuple[Settings, int]:
    """Validate ``text``; raises :class:`SettingsTooNewError` or :class:`_Unusable` (any other
    failure of the checks, whatever the shape of the file, is reported the same way)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unusable(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # nesting too deep, numbers too long
        raise _Unusable(f"not usable JSON ({type(exc).__name__}: {str(exc)[:100]})") from None
    if not isinstance(raw, dict):
        raise _Unusable(f"the settings file must hold a JSON object, not {_json_kind(raw)}")
    try:
        data, found = migrate(raw)
        return from_dict(data), found
    except SettingsTooNewError:
        raise
    except SettingsError as exc:
        raise _Unusable(str(exc)) from None
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # A shape the checks did not foresee (a list where a section belongs, in an old layout).
        raise _Unusable(f"a setting has the wrong shape ({type(exc).__name__}: {str(exc)[:100]})") from None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else type(value).__name__


def peek(path: Path) -> Settings | None:
    """The settings at ``path`` without touching the file: defaults when it is absent, None when it
    cannot be read or is invalid (:func:`load` then reports that and moves the file aside)."""
    if not os.path.lexists(path):
        return Settings()
    try:
        return _parse(_read_text(path))[0]
    except (SettingsError, _Unusable):
        return None


def load(path: Path, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Settings:
    """Load (creating defaults when absent) and migrate the settings file at ``path``.

    Raises :class:`SettingsError`; a file of any unusable shape (not JSON, not an object, wrong
    types, too big, not UTF-8, a folder) has then been moved aside and the message names the file,
    the problem and where it went. :class:`SettingsTooNewError` leaves the file where it is.
    """
    if not os.path.lexists(path):
        settings = Settings()
        save(settings, path)
        return settings
    try:
        text = _read_text(path)
        settings, found = _parse(text)
    except SettingsTooNewError as exc:
        raise SettingsTooNewError(f"{path}: {exc}") from None
    except _Unusable as exc:
        try:
            aside = _move_aside(path, now)
        except OSError as move_exc:
            raise SettingsError(
                f"the settings file {path} is invalid: {exc}; it could not be moved aside either "
                f"({move_exc.strerror or move_exc})"
            ) from None
        raise SettingsMovedAsideError(path, str(exc), aside) from None
    if found < SCHEMA_VERSION:
        backup = path.with_name(f"{path.name}.bak-v{found}")
        if not backup.exists():
            atomic_write_text(backup, text)
        save(settings, path)
    return settings


def load_or_defaults(
    path: Path, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> tuple[Settings, str | None]:
    """Like :func:`load`, but an unusable file (moved aside) gives the defaults and the message to
    show. :class:`SettingsTooNewError` and a file that can be neither read nor moved still raise:
    defaults saved over either would lose what the person wrote."""
    try:
        return load(path, now=now), None
    except SettingsMovedAsideError as exc:
        settings = Settings()
        save(settings, path)
        return settings, (
            f"the settings file {path} is invalid: {exc.problem}. It was moved to {exc.aside.name} "
            "and the default settings are used; fix it and move it back to use it again"
        )
