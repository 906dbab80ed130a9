"""The strategy API: typed parameters, signals, the context a strategy acts through, the base class.

A strategy never talks to a broker. It reacts to market data in its lifecycle hooks and *emits*
order intents through its :class:`StrategyContext` (``ctx.submit(...)``, ``ctx.target_position(...)``);
the :class:`~services.strategies.runner.StrategyRunner` attributes every intent to the strategy
(source ``"strategy:<name>"``) and hands it to an order sink (the execution engine live, a simulated
broker in a backtest). The same strategy object therefore runs unchanged live and in replay.

Threading: every hook runs on the thread that drives the runner (the event-loop thread live, the
backtest worker thread in replay), one call at a time. Hooks must not block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.money import InvalidNumberError, decimal_str, to_decimal, to_float, to_int
from services.domain.symbols import InvalidSymbolError, normalize_symbol

if TYPE_CHECKING:
    from services.domain.events import TradeUpdateEvent
    from services.domain.models import Bar, OrderRequest, Quote


class Signal(StrEnum):
    """What a strategy wants to hold: long, short or nothing."""

    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"


class StrategyState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"


class ParamError(ValueError):
    """A strategy parameter is unknown, missing or out of range; the message names it."""


class OrderSink(Protocol):
    """Where attributed order intents go live (the execution engine implements this).

    Guarantees expected from implementations: called on the event-loop thread; ``submit`` journals
    the intent before anything reaches the wire and returns the client order id it used (the one in
    ``request`` when set); it raises on a definitive refusal (e.g. a risk rejection) and never
    blocks the loop. ``cancel`` is idempotent.
    """

    async def submit(self, request: OrderRequest, source: str) -> str: ...

    async def cancel(self, client_order_id: str) -> None: ...


# --------------------------------------------------------------------------------------------------
# Parameters

_PARAM_TYPES: tuple[type, ...] = (int, float, Decimal, bool, str, tuple)
_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n"})


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter.

    ``type`` is one of ``int``, ``float``, ``Decimal``, ``bool``, ``str`` or ``tuple`` (a list of
    symbols, written ``AAPL;MSFT`` or ``AAPL|MSFT`` in text because ``,`` separates parameters on the
    command line). ``minimum``/``maximum`` apply to numbers, ``choices`` to anything.
    """

    name: str
    type: type
    default: Any
    description: str = ""
    minimum: float | Decimal | int | None = None
    maximum: float | Decimal | int | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in _PARAM_TYPES:
            raise TypeError(f"parameter {self.name!r}: unsupported type {self.type!r}")

    def coerce(self, value: object) -> Any:
        """Return ``value`` (typed or text) as this parameter's type, validated; raise ParamError."""
        try:
            typed = self._convert(value)
        except (ValueError, InvalidNumberError, InvalidSymbolError) as exc:
            raise ParamError(f"parameter {self.name!r}: {exc}") from None
        if self.type in (int, float, Decimal):
            if self.minimum is not None and typed < self.minimum:
                raise ParamError(f"parameter {self.name!r} must be >= {self.minimum}, got {typed}")
            if self.maximum is not None and typed > self.maximum:
                raise ParamError(f"parameter {self.name!r} must be <= {self.maximum}, got {typed}")
        if self.choices is not None and typed not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ParamError(f"parameter {self.name!r} must be one of {allowed}; got {typed!r}")
        return typed

    def _convert(self, value: object) -> Any:
        kind = self.type
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"expected true/false, got {value!r}")
        if kind is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer, got a boolean")
            if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("+-").isdigit()):
                return to_int(value, field=self.name)
            raise ValueError(f"expected an integer, got {value!r}")
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("expected a number, got a boolean")
            if not isinstance(value, (int, float, str, Decimal)):
                raise ValueError(f"expected a number, got {value!r}")
            return to_float(value, field=self.name)
        if kind is Decimal:
            return to_decimal(value, field=self.name)
        if kind is tuple:
            items: list[str]
            if isinstance(value, str):
                items = [p for p in value.replace("|", ";").split(";") if p.strip()]
            elif isinstance(value, (list, tuple)):
                items = [str(p) for p in value]
            else:
                raise ValueError(f"expected a list of symbols, got {value!r}")
            if not items:
                raise ValueError("needs at least one symbol")
            return tuple(dict.fromkeys(normalize_symbol(p) for p in items))
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return value.strip()

    def to_text(self, value: Any) -> str:
        """The text form :meth:`coerce` reads back (used for persistence and the UI editor)."""
        if self.type is tuple:
            return ";".join(value)
        if self.type is Decimal:
            return decimal_str(value) or "0"
        if self.type is bool:
            return "true" if value else "false"
        return str(value)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for a parameter editor."""
        return {
            "name": self.name,
            "type": "symbols" if self.type is tuple else self.type.__name__.lower(),
            "default": self.to_text(self.default),
            "description": self.description,
            "minimum": None if self.minimum is None else str(self.minimum),
            "maximum": None if self.maximum is None else str(self.maximum),
            "choices": None if self.choices is None else [str(c) for c in self.choices],
        }


#: Parameters every strategy has.
COMMON_PARAMS: tuple[Param, ...] = (
    Param("symbols", tuple, ("AAPL",), "symbols to trade, separated by ; or |"),
    Param("qty", Decimal, Decimal(1), "order size (shares or coins) per position", minimum=Decimal(0)),
)


def parse_strategy_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split a command-line spec ``NAME[:key=value,...]`` into the name and raw text values."""
    text = spec.strip()
    if not text:
        raise ParamError("empty strategy spec")
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ParamError(f"strategy spec {spec!r} has no name")
    values: dict[str, str] = {}
    for part in rest.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"strategy spec {spec!r}: expected key=value, got {part.strip()!r}")
        if key in values:
            raise ParamError(f"strategy spec {spec!r}: parameter {key!r} given twice")
        values[key] = value.strip()
    return name, values


# --------------------------------------------------------------------------------------------------
# Context and base class


class StrategyContext(Protocol):
    """What a strategy may do. Implemented by the runner; every intent is attributed to the strategy."""

    @property
    def name(self) -> str: ...

    @property
    def now(self) -> datetime | None:
        """Timestamp of the event being handled (bar start for bars); None before the first event."""
        ...

    @property
    def state(self) -> dict[str, Any]:
        """Custom JSON-able state, persisted with the strategy and restored after a restart."""
        ...

    @property
    def restored(self) -> bool:
        """True when this run continues a persisted one (positions and state were restored)."""
        ...

    def submit(
        self,
        symbol: str,
        side: OrderSide,
        qty: Decimal,
        *,
        type: OrderType = OrderType.MARKET,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.DAY,
    ) -> str:
        """Emit an order intent; returns its client order id."""
        ...

    def cancel(self, client_order_id: str) -> None: ...

    def target_position(self, symbol: str, qty: Decimal) -> str | None:
        """Emit a market intent for the difference between ``qty`` and position + pending orders.

        Returns the client order id, or None when nothing needs to be sent.
        """
        ...

    def position(self, symbol: str) -> Decimal:
        """This strategy's own position (from its own fills), signed."""
        ...

    def signal(self, symbol: str, signal: Signal, reason: str = "") -> None:
        """Record a decision; only changes are logged."""
        ...


class Strategy:
    """Base class. Subclasses declare ``KEY``, ``DESCRIPTION`` and ``PARAMS``, and override hooks.

    Hooks are called in this order: ``on_start`` once, then ``on_bar`` / ``on_quote`` /
    ``on_trade_update`` as events arrive (only while running, except trade updates which always
    arrive so positions stay right), then ``on_stop`` once. An exception in a hook stops this
    strategy alone (state ``error``).
    """

    KEY: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        self.params: dict[str, Any] = self.resolve_params(params or {})
        self._ctx: StrategyContext | None = None

    # -- parameters ----------------------------------------------------------------------------
    @classmethod
    def param_specs(cls) -> tuple[Param, ...]:
        own = {p.name for p in cls.PARAMS}
        return tuple(p for p in COMMON_PARAMS if p.name not in own) + cls.PARAMS

    @classmethod
    def resolve_params(cls, values: Mapping[str, object]) -> dict[str, Any]:
        """Defaults overlaid with ``values`` (typed or text), each validated; then :meth:`check_params`."""
        specs = {p.name: p for p in cls.param_specs()}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            known = ", ".join(sorted(specs))
            raise ParamError(f"{cls.KEY or cls.__name__}: unknown parameter(s) {unknown}; known: {known}")
        resolved = {name: spec.default for name, spec in specs.items()}
        for name, raw in values.items():
            resolved[name] = specs[name].coerce(raw)
        cls.check_params(resolved)
        return resolved

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Cross-parameter validation (e.g. fast < slow); raise :class:`ParamError`."""

    def params_as_text(self) -> dict[str, str]:
        specs = {p.name: p for p in self.param_specs()}
        return {name: specs[name].to_text(value) for name, value in self.params.items()}

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.params["symbols"])

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError(f"strategy {self.KEY!r} is not attached to a runner")
        return self._ctx

    def bind(self, ctx: StrategyContext) -> None:
        """Called by the runner before ``on_start``."""
        self._ctx = ctx

    # -- hooks ---------------------------------------------------------------------------------
    def on_start(self) -> None:
        """Called once when the strategy starts (or restarts; see ``ctx.restored``)."""

    def on_bar(self, bar: Bar) -> None:
        """A closed bar for one of this strategy's symbols."""

    def on_quote(self, quote: Quote) -> None:
        """A quote for one of this strategy's symbols."""

    def on_trade_update(self, event: TradeUpdateEvent) -> None:
        """A trade update for one of this strategy's own orders (after its position is updated)."""

    def on_stop(self) -> None:
        """Called once when the strategy stops."""


@dataclass(slots=True)
class StrategyPosition:
    """One strategy's position in one symbol, from its own fills. P&L in the quote currency."""

    qty: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    last_price: Decimal | None = None
    fills: int = 0

    def apply_fill(self, side: OrderSide, qty: Decimal, price: Decimal) -> Decimal:
        """Apply one fill; returns the P&L it realised (closing part only)."""
        signed = qty if side is OrderSide.BUY else -qty
        realized = Decimal(0)
        self.fills += 1
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + price * qty) / abs(total)
            self.qty = total
        else:
            closing = min(abs(signed), abs(self.qty))
            direction = 1 if self.qty > 0 else -1
            realized = (price - self.avg_price) * closing * direction
            self.realized += realized
            remaining = self.qty + signed
            if remaining == 0:
                self.avg_price = Decimal(0)
            elif (remaining > 0) != (self.qty > 0):
                self.avg_price = price  # flipped: the rest opens a new position at this price
            self.qty = remaining
        if self.last_price is None:
            self.last_price = price
        return realized

    @property
    def unrealized(self) -> Decimal:
        if self.qty == 0 or self.last_price is None:
            return Decimal(0)
        return (self.last_price - self.avg_price) * self.qty

    @property
    def pnl(self) -> Decimal:
        return self.realized + self.unrealized

    def to_json(self) -> dict[str, Any]:
        return {
            "qty": decimal_str(self.qty),
            "avg_price": decimal_str(self.avg_price),
            "realized": decimal_str(self.realized),
            "last_price": decimal_str(self.last_price),
            "fills": self.fills,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StrategyPosition:
        last = data.get("last_price")
        return cls(
            qty=to_decimal(data["qty"], field="qty"),
            avg_price=to_decimal(data["avg_price"], field="avg_price"),
            realized=to_decimal(data["realized"], field="realized"),
            last_price=None if last is None else to_decimal(last, field="last_price"),
            fills=int(data.get("fills", 0)),
        )


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One decision: at ``ts`` (the bar/quote being handled) ``strategy`` moved ``symbol`` to ``signal``."""

    strategy: str
    symbol: str
    ts: datetime | None
    signal: Signal
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An attributed order intent, as handed to the order sink."""

    strategy: str
    source: str
    request: OrderRequest
    ts: datetime | None


@dataclass(slots=True)
class StrategyInfo:
    """A read-only summary for reports and panels."""

    name: str
    key: str
    state: StrategyState
    params: dict[str, str]
    symbols: tuple[str, ...]
    orders: int
    pnl: Decimal
    realized: Decimal
    positions: dict[str, Decimal]
    last_signal: Signal | None
    error: str | None
    traceback: str | None = None
    rejected: int = 0
    last_rejection: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
