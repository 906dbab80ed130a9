"""Seams between the exchange's parts: the market simulator, the trading venue and the server.

The simulator implements :class:`MarketView`; the venue (orders, matching, accounts) reads prices
only through it and is told of every NBBO change by ``TradingVenue.on_quote(symbol)`` and of every
print by ``TradingVenue.on_trade(symbol, price)`` (stops are elected on trades).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.exchange.orders import TradeUpdate

_ASSET_NS = uuid.UUID("6f1f3f0e-2a55-4d0c-9a43-0d3c1b7e5a10")


def asset_id_for(symbol: str) -> str:
    """Deterministic UUID for a symbol, stable across restarts and machines."""
    return str(uuid.uuid5(_ASSET_NS, symbol))


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable symbol of the simulated market."""

    symbol: str  # "AAPL" or "BTC/USD"
    asset_class: str  # "us_equity" | "crypto"
    exchange: str  # an AssetExchange value: "NASDAQ", "NYSE", "ARCA", "CRYPTO"
    name: str
    base_price: Decimal  # price level the generator starts from
    tick: Decimal  # price increment (0.01 for stocks above $1)
    tradable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    marginable: bool = True
    fractionable: bool = True
    min_order_size: Decimal = Decimal("0.0001")
    min_trade_increment: Decimal = Decimal("0.0001")

    @property
    def asset_id(self) -> str:
        return asset_id_for(self.symbol)

    @property
    def is_crypto(self) -> bool:
        return self.asset_class == "crypto"


@dataclass(frozen=True, slots=True)
class NBBO:
    """The simulated national best bid and offer plus the last trade, at ``ts`` (UTC)."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    last: Decimal
    ts: datetime
    prev_close: Decimal


class MarketView(Protocol):
    """Read-only prices for the venue. Called on the exchange's event-loop thread; never blocks."""

    def nbbo(self, symbol: str) -> NBBO | None:
        """Current NBBO, or None for an unknown symbol or one with no quote yet."""
        ...

    def is_halted(self, symbol: str) -> bool:
        """True while trading in ``symbol`` is halted (admin fault)."""
        ...


class KeyStore(Protocol):
    def check(self, key_id: str | None, secret: str | None) -> bool:
        """True when the pair is a valid API key of this exchange."""
        ...


@dataclass
class TradeUpdateFaults:
    """Admin-injected faults on outgoing trade updates (all counters count down as they apply)."""

    drop_next: int = 0
    duplicate_next: int = 0
    reorder_next: int = 0  # hold this many updates, then release them in reverse order
    kill_after: int | None = None  # close every /stream socket after this many more messages


class TradeUpdateSink(Protocol):
    """Where the venue publishes its trade updates: the /stream hub (http/trading_stream.py)."""

    sent: int

    @property
    def client_count(self) -> int: ...

    def publish(self, update: TradeUpdate) -> None: ...

    async def kill_all(self) -> int: ...

    async def close(self) -> None: ...
