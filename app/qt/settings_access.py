"""The settings dialog for this session's profile, with the keyring and the credential check
("Test connection": GET /v2/account) handed in from here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import settings as app_settings
from app.paths import DataDirError, prepare, resolve_paths
from app.secrets import ApiKeys

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.context import AppContext, Services
    from app.exchange_process import ExchangeSession
    from app.logging_setup import SecretRedactor
    from app.settings import Settings
    from services.broker.base import AccountIdentity

Validator = Callable[[str, str, str], Awaitable["AccountIdentity"]]

log = logging.getLogger("heron.app.settings")


class SettingsFiles:
    """The settings dialog's :class:`widgets.settings.backend.SettingsBackend`: app/settings.py's
    checks and atomic save, app/paths.py's profile folders, app/secrets.py's key pairs."""

    themes: Sequence[str] = app_settings.THEMES
    int_risk_keys: Sequence[str] = app_settings.INT_RISK_KEYS
    list_risk_keys: Sequence[str] = app_settings.LIST_RISK_KEYS

    def keys(self, key_id: str, secret: str) -> ApiKeys:
        return ApiKeys(key_id, secret)

    def save(self, data: dict[str, Any], path: Path) -> tuple[Settings | None, str | None]:
        """Limits the risk gate would refuse (e.g. a zero max notional) are not saved either: what is
        saved is put in force at once (:func:`apply_live`)."""
        from app.subsystems.orders import risk_limits_from_settings
        from services.risk.limits import RiskLimitsError

        try:
            new = app_settings.from_dict(data)
            risk_limits_from_settings(new.risk)
            app_settings.save(new, path)
        except (app_settings.SettingsError, RiskLimitsError) as exc:
            return None, str(exc)
        return new, None

    def create_profile(self, name: str, data_root: Path) -> str | None:
        try:
            paths = prepare(resolve_paths(name, data_root))
            app_settings.load(paths.settings_file)  # writes the defaults for a new profile
        except (DataDirError, app_settings.SettingsError) as exc:
            return str(exc)
        return None


def open_settings(window: QWidget, ctx: AppContext, services: Services, *, show: bool = True) -> Any:
    """Build (and show, non-modal) the settings dialog for this session's profile."""
    from app.secrets import SecretStore
    from widgets.settings_dialog import SettingsDialog

    store = services.secret_store
    if store is None:
        store = SecretStore(on_secret=ctx.redactor.register)
    exchange = services.exchange
    dialog = SettingsDialog(
        ctx.settings,
        ctx.paths.settings_file,
        profile=ctx.paths.profile,
        data_root=ctx.paths.root,
        backend=SettingsFiles(),
        secret_store=store,
        validator=_validator(exchange, ctx.redactor),
        local_base_url=exchange.url if exchange is not None else None,
        apply_live=lambda new: apply_live(window, ctx, services, new),
        parent=window,
    )
    if show:
        dialog.show()
    return dialog


def apply_live(window: QWidget, ctx: AppContext, services: Services, new: Settings) -> str | None:
    """Put saved settings in force without a restart: the risk gate's limits (the next pre-check and
    order use them), the ticket's confirmation, the time zone and the keyboard shortcuts. Mode,
    theme and the local exchange wait for a restart (the dialog says so). Returns why something
    could not be applied."""
    from app.subsystems.orders import risk_limits_from_settings
    from services.risk.limits import RiskLimitsError
    from widgets.models.common import TIMES
    from widgets.shortcuts import bindings

    ctx.settings = new
    TIMES.set(new.ui.time_zone)
    if hasattr(window, "apply_shortcuts"):
        window.apply_shortcuts(bindings(new.ui.shortcuts))
    panels = getattr(window, "trading_panels", None)
    ticket = getattr(panels, "ticket", None)
    if ticket is not None:
        ticket.confirm_orders = new.ui.confirm_orders
    if services.risk is None:
        return None
    try:
        services.risk.set_limits(risk_limits_from_settings(new.risk))
    except RiskLimitsError as exc:  # SettingsFiles.save refuses these; a hand-edited file may not
        log.error("risk limits not applied: %s", exc)
        return f"the risk limits could not be applied ({exc}); the previous limits stay in force"
    log.info("risk limits in force: %s", new.risk)
    if ticket is not None:
        ticket.run_precheck()
    return None


def _validator(exchange: ExchangeSession | None, redactor: SecretRedactor) -> Validator:
    """Credential validation (GET /v2/account) for the settings dialog's "Test connection".

    Local mode tests the running local exchange with its session keys.
    """

    async def validate(key_id: str, secret: str, environment: str) -> AccountIdentity:
        from services.broker.credentials import validate_credentials

        if secret:
            redactor.register(secret)
        if environment == "local":
            if exchange is None:
                raise RuntimeError("the local exchange is not running in this session")
            return await validate_credentials(
                exchange.keys.key_id, exchange.keys.secret, environment="local", base_url=exchange.url
            )
        return await validate_credentials(key_id, secret, environment=environment)

    return validate
