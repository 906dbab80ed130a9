"""TradingVenue: the trading side of the local exchange, composed for the server.

The server creates one venue, calls :meth:`TradingVenue.add_routes` on its aiohttp app, awaits
:meth:`start` / :meth:`close`, and forwards every NBBO change to :meth:`on_quote`. Everything runs
on the exchange's event-loop thread. Each operation changes the engine, persists the change to
SQLite (one transaction) and only then publishes the trade updates to /stream clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from .contracts import Instrument, KeyStore, MarketView
from .ledger import Holding, Ledger, dstr, q9, rfc3339
from .matching import MatchingEngine, VenueOrder
from .sessions import NEW_YORK, MarketCalendar
from .store import VenueStore
from .trading_stream import STREAM_PATHS, TradeStreamHub, TradeUpdateFaults

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
EQUITY_SAMPLE_SECONDS = 60

__all__ = ["TradeUpdateFaults", "TradingVenue"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TradingVenue:
    """Orders, matching, the paper account, persistence, trading REST routes and /stream."""

    def __init__(
        self,
        *,
        data_dir: Path,
        universe: Mapping[str, Instrument],
        market: MarketView,
        calendar: MarketCalendar,
        keys: KeyStore,
        seed: int = 0,
        starting_cash: Decimal = Decimal("100000"),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.universe = universe
        self.market = market
        self.calendar = calendar
        self.keys = keys
        self.clock = clock
        self.starting_cash = starting_cash
        self.faults = TradeUpdateFaults()
        self.hub = TradeStreamHub(keys, self.faults)
        self.store = VenueStore(self.data_dir)
        snap = self.store.load()
        kv = snap.kv
        now = clock()
        fresh = "account_id" not in kv
        self.account_id = kv.get("account_id") or str(uuid.uuid4())
        self.account_number = kv.get("account_number") or "PA" + self.account_id.replace("-", "")[:10].upper()
        self.created_at = datetime.fromisoformat(kv["created_at"]) if "created_at" in kv else now
        cash = Decimal(kv["cash"]) if "cash" in kv else starting_cash
        self.last_equity = Decimal(kv["last_equity"]) if "last_equity" in kv else starting_cash
        self.ledger = Ledger(account_id=self.account_id, cash=cash)
        for h in snap.positions:
            self.ledger.positions[h.symbol] = h
        self.ledger.activities = snap.activities
        self.equity_series: list[tuple[int, Decimal]] = snap.equity
        self.engine = MatchingEngine(
            universe=universe, market=market, calendar=calendar, ledger=self.ledger, clock=clock, seed=seed
        )
        self.engine.load(snap.orders)
        self._next_close = (
            datetime.fromisoformat(kv["next_close"]) if "next_close" in kv else calendar.next_close(now)
        )
        self._last_sample = self.equity_series[-1][0] if self.equity_series else 0
        self._tasks: list[asyncio.Task[None]] = []
        self.updates_published = 0
        if fresh:
            self.engine.new_equity.append((int(now.timestamp()), starting_cash))
        self._commit(force_kv=fresh)

    # ---- the server's interface ---------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        from .trading_api import TradingApi  # local: the API module imports this one for typing

        TradingApi(self).add_routes(app)
        for path in STREAM_PATHS:
            app.router.add_get(path, self.hub.handle)

    async def start(self) -> None:
        """Catch up on anything due while the exchange was down, then run the periodic sweep."""
        self._roll_session(self.clock())
        self.sweep()
        self._tasks.append(asyncio.ensure_future(self._sweeper()))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        self._commit()
        await self.hub.close()
        self.store.close()

    def on_quote(self, symbol: str) -> None:
        """Called by the simulator on every NBBO change (loop thread). O(1) with no resting orders."""
        if symbol not in self.engine.resting:
            return
        self.engine.on_quote(symbol)
        if self.engine.dirty_orders or self.engine.outbox:
            self._commit()

    def set_matching_paused(self, paused: bool) -> None:
        self.engine.paused = paused
        if not paused:
            self.sweep()

    def set_cancel_delay(self, seconds: float) -> None:
        """Admin: cancels go to pending_cancel and complete ``seconds`` later (0 = at once)."""
        self.engine.cancel_delay_s = max(0.0, seconds)

    def set_replace_race(self, count: int) -> None:
        """Admin: the next ``count`` replaces lose the documented race (old fills, new rejected)."""
        self.engine.replace_race_next = max(0, count)

    async def kill_streams(self) -> int:
        return await self.hub.kill_all()

    def stats(self) -> dict[str, int]:
        out = dict(self.engine.counters)
        out["open_orders"] = sum(len(b) for b in self.engine.open_by_symbol.values())
        out["orders_total"] = len(self.engine.orders)
        out["positions"] = len(self.ledger.positions)
        out["updates_published"] = self.updates_published
        out["updates_sent"] = self.hub.sent
        out["stream_clients"] = self.hub.client_count
        return out

    # ---- periodic work ------------------------------------------------------------------------
    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep()
            except Exception:  # a bug here must not stop expiry and equity sampling forever
                log.exception("venue sweep failed")

    def sweep(self) -> None:
        """Expire due orders, re-evaluate resting orders, roll the session, sample equity."""
        now = self.clock()
        self.engine.sweep(now)
        self._roll_session(now)
        ts = int(now.timestamp())
        if ts - self._last_sample >= EQUITY_SAMPLE_SECONDS:
            self.engine.sample_equity(now)
        self._commit()

    def _roll_session(self, now: datetime) -> None:
        if now < self._next_close:
            return
        # last_equity is the equity at the previous session close (approximated by now when the
        # exchange was down at the close).
        self.last_equity = q9(self.equity())
        self._next_close = self.calendar.next_close(now)
        self.store.write(
            kv={"last_equity": str(self.last_equity), "next_close": self._next_close.isoformat()}
        )

    # ---- persistence + publication ------------------------------------------------------------
    def _commit(self, *, force_kv: bool = False) -> None:
        e = self.engine
        if not (
            force_kv or e.dirty_orders or e.dirty_positions or e.new_activities or e.new_equity or e.outbox
        ):
            return
        positions: dict[str, Holding | None] = {s: self.ledger.positions.get(s) for s in e.dirty_positions}
        kv = {"cash": str(self.ledger.cash)}
        if force_kv:
            kv.update(
                account_id=self.account_id,
                account_number=self.account_number,
                created_at=self.created_at.isoformat(),
                last_equity=str(self.last_equity),
                next_close=self._next_close.isoformat(),
            )
        self.store.write(
            kv=kv,
            orders=list(e.dirty_orders.values()),
            positions=positions,
            activities=e.new_activities,
            equity=e.new_equity,
        )
        if e.new_equity:
            self._last_sample = e.new_equity[-1][0]
            if self.equity_series and self.equity_series[-1][0] == e.new_equity[0][0]:
                self.equity_series.pop()
            self.equity_series.extend(e.new_equity)
        e.dirty_orders.clear()
        e.dirty_positions.clear()
        e.new_activities.clear()
        e.new_equity.clear()
        outbox, e.outbox = e.outbox, []
        for update in outbox:
            self.updates_published += 1
            self.hub.publish(update)

    def run(self, op: Callable[[], Any]) -> Any:
        """Run one engine operation and commit what it changed, even when it raised."""
        try:
            return op()
        finally:
            self._commit()

    # ---- views used by the REST layer ---------------------------------------------------------
    def equity(self) -> Decimal:
        return self.ledger.equity(self.engine.quotes())

    def account_json(self) -> dict[str, Any]:
        quotes = self.engine.quotes()
        long_mv, short_mv = self.ledger.market_values(quotes)
        equity = self.ledger.cash + long_mv + short_mv
        bp = self.ledger.buying_power(quotes, self.engine.reserved_total)
        initial = long_mv + abs(short_mv) * Decimal("1.025")
        maintenance = (long_mv + abs(short_mv)) * Decimal("0.3")
        return {
            "id": self.account_id,
            "account_number": self.account_number,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": dstr(q9(bp)),
            "regt_buying_power": dstr(q9(bp)),
            "daytrading_buying_power": "0",
            "effective_buying_power": dstr(q9(bp)),
            "non_marginable_buying_power": dstr(q9(bp)),
            "options_buying_power": dstr(q9(bp)),
            "bod_dtbp": "0",
            "cash": dstr(q9(self.ledger.cash)),
            "accrued_fees": "0",
            "pending_transfer_out": "0",
            "pending_transfer_in": "0",
            "portfolio_value": dstr(q9(equity)),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": rfc3339(self.created_at),
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": dstr(q9(equity)),
            "last_equity": dstr(self.last_equity),
            "long_market_value": dstr(q9(long_mv)),
            "short_market_value": dstr(q9(short_mv)),
            "position_market_value": dstr(q9(long_mv + abs(short_mv))),
            "initial_margin": dstr(q9(initial)),
            "maintenance_margin": dstr(q9(maintenance)),
            "last_maintenance_margin": dstr(q9(maintenance)),
            "sma": "0",
            "daytrade_count": 0,
            "balance_asof": self.clock().astimezone(UTC).date().isoformat(),
            "crypto_tier": 1,
            "options_approved_level": 0,
            "options_trading_level": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def positions_json(self, holdings: Iterable[Holding]) -> list[dict[str, Any]]:
        """Alpaca's position objects; a position opened since New York midnight reports its whole
        unrealized P&L as intraday P&L."""
        ny_midnight = self.clock().astimezone(NEW_YORK).replace(hour=0, minute=0, second=0, microsecond=0)
        opened = self.ledger.opened_since(ny_midnight.astimezone(UTC))
        out = []
        for h in holdings:
            side = "sell" if h.qty > 0 else "buy"
            available = abs(h.qty) - self.engine.held_for_orders(h.symbol, side)
            out.append(self.ledger.position_json(
                h, self.universe[h.symbol], self.market.nbbo(h.symbol), max(available, Decimal(0)),
                opened_today=h.symbol in opened,
            ))  # fmt: skip
        return out

    def position_json(self, h: Holding) -> dict[str, Any]:
        return self.positions_json([h])[0]

    def order_json(self, o: VenueOrder, *, nested: bool = True) -> dict[str, Any]:
        return self.engine.order_json(o, nested=nested)
