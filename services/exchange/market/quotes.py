"""What the simulator answers about now: the NBBO (the venue's :class:`MarketView`), the latest trade
and quote for REST, and a synthetic five-level crypto order book. Mixed into
:class:`~services.exchange.market.simulator.MarketSimulator`, which sets these arrays."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.exchange.contracts import NBBO
from services.exchange.market.encoding import Message
from services.exchange.market.history import NS
from services.exchange.market.minutes import ts


class LatestValues:
    """The simulator's current values per symbol index (numpy arrays)."""

    symbols: list[str]
    index: dict[str, int]
    _trade_id: int
    _dec: list[int]
    _tick: Any
    _prev_close: Any
    _last_size: Any
    _bid: Any
    _ask: Any
    _bid_size: Any
    _ask_size: Any
    _last_price: Any
    _last_trade_ns: Any
    _quote_ns: Any
    _halted: Any

    # ------------------------------------------------------------------------------------------
    # MarketView

    def nbbo(self, symbol: str) -> NBBO | None:
        i = self.index.get(symbol)
        if i is None:
            return None
        d = self._dec[i]
        return NBBO(
            symbol=symbol,
            bid=Decimal(f"{self._bid[i]:.{d}f}"),
            ask=Decimal(f"{self._ask[i]:.{d}f}"),
            bid_size=Decimal(repr(float(self._bid_size[i]))),
            ask_size=Decimal(repr(float(self._ask_size[i]))),
            last=Decimal(f"{self._last_price[i]:.{d}f}"),
            ts=datetime.fromtimestamp(int(self._quote_ns[i]) / NS, UTC),
            prev_close=Decimal(f"{self._prev_close[i]:.{d}f}"),
        )

    def is_halted(self, symbol: str) -> bool:
        i = self.index.get(symbol)
        return i is not None and bool(self._halted[i])

    # ------------------------------------------------------------------------------------------
    # latest values for REST (LiveMinutes: minutes.py)

    def latest_trade(self, symbol: str) -> tuple[int, float, float, int]:
        """(t ns, price, size, trade id) of the last trade."""
        i = self.index[symbol]
        return (
            int(self._last_trade_ns[i]),
            float(self._last_price[i]),
            float(self._last_size[i]),
            self._trade_id,
        )

    def latest_quote(self, symbol: str) -> tuple[int, float, float, float, float]:
        """(t ns, bid, bid size, ask, ask size)."""
        i = self.index[symbol]
        return (
            int(self._quote_ns[i]),
            float(self._bid[i]),
            float(self._bid_size[i]),
            float(self._ask[i]),
            float(self._ask_size[i]),
        )

    def _orderbook(self, i: int, ns: int) -> Message:
        d, tick = self._dec[i], float(self._tick[i])
        bid, ask = float(self._bid[i]), float(self._ask[i])
        bids = [
            {"p": round(bid - k * tick * 3, d), "s": round(float(self._bid_size[i]) * (1 + k), 4)}
            for k in range(5)
        ]
        asks = [
            {"p": round(ask + k * tick * 3, d), "s": round(float(self._ask_size[i]) * (1 + k), 4)}
            for k in range(5)
        ]
        return {"T": "o", "S": self.symbols[i], "t": ts(ns), "b": bids, "a": asks, "r": False}

    def orderbook(self, symbol: str) -> Message:
        """A five-level synthetic book around the current NBBO (crypto latest/orderbooks)."""
        i = self.index[symbol]
        return self._orderbook(i, int(self._quote_ns[i]))
