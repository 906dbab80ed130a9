"""TradingVenue: the trading side of the local exchange, composed for the server.

The server creates one venue, serves it over HTTP (``services/exchange/http``: the REST routes, and
the /stream hub it attaches as :attr:`TradingVenue.hub`), awaits :meth:`start` / :meth:`close`, and
forwards every NBBO change to :meth:`on_quote` and every print to :meth:`on_trade`. Everything runs
on the exchange's event-loop thread. Each operation changes the engine, persists the change to
SQLite (one transaction) and only then publishes the trade updates to /stream clients.

Order flow as on Alpaca: a request that places an order (POST /v2/orders, PATCH, closing a position)
is answered with the order accepted; its first match runs on the loop right after the answer
(``loop.call_soon``), so fills, IOC/FOK outcomes included, reach the client on trade_updates.

A venue writes only what it changed (see store.py). When its database was changed under it by
another process, its own state is stale: it writes nothing more, logs why once, and calls
:attr:`TradingVenue.on_stale` (the exchange process stops on it; see ``__main__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.domain.calendar import MarketCalendar
from services.exchange.contracts import Instrument, KeyStore, MarketView, TradeUpdateFaults, TradeUpdateSink
from services.exchange.errors import INTERNAL, ApiError
from services.exchange.ledger import Holding, Ledger, q9
from services.exchange.matching import MatchingEngine
from services.exchange.orders import TradeUpdate
from services.exchange.store import StaleStateError, VenueStore

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
EQUITY_SAMPLE_SECONDS = 60

__all__ = ["NoStream", "TradingVenue"]


class NoStream:
    """The trade-update sink of a venue nobody serves yet: updates go nowhere."""

    sent = 0
    client_count = 0

    def publish(self, update: TradeUpdate) -> None:
        pass

    async def kill_all(self) -> int:
        return 0

    async def close(self) -> None:
        pass


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
        account_type: str = "margin",
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
        self.hub: TradeUpdateSink = NoStream()  # the HTTP layer attaches the /stream hub
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
        self.ledger = Ledger(
            account_id=self.account_id,
            cash=cash,
            account_type=account_type,
            last_equity=self.last_equity,
            non_marginable=frozenset(sym for sym, inst in universe.items() if not inst.marginable),
        )
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
        self._match_handle: asyncio.Handle | None = None
        self.updates_published = 0
        # Set when the database was changed by another writer: nothing is written from then on.
        self.stale: str | None = None
        self.on_stale: Callable[[str], None] = lambda reason: None
        if fresh:
            self.engine.new_equity.append((int(now.timestamp()), starting_cash))
        self._commit(force_kv=fresh)

    # ---- the server's interface ---------------------------------------------------------------
    async def start(self) -> None:
        """Catch up on anything due while the exchange was down, then run the periodic sweep."""
        self._roll_session(self.clock())
        self.sweep()
        self._tasks.append(asyncio.ensure_future(self._sweeper()))

    async def close(self) -> None:
        if self._match_handle is not None:  # accepted orders left unmatched are matched on start
            self._match_handle.cancel()
            self._match_handle = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        with contextlib.suppress(StaleStateError):  # said once already; nothing stale is written
            self._commit()
        await self.hub.close()
        self.store.close()

    def on_quote(self, symbol: str) -> None:
        """Called by the simulator on every NBBO change (loop thread). O(1) with no resting orders."""
        if (symbol not in self.engine.resting and not self.engine.pending) or self.stale is not None:
            return
        self.engine.on_quote(symbol)
        if self.engine.dirty_orders or self.engine.outbox:
            self._commit_quietly()

    def on_trade(self, symbol: str, price: Decimal) -> None:
        """Called by the simulator for every print (loop thread): stops are elected on trades, not
        on the quote. O(1) when ``symbol`` has no open order."""
        if symbol not in self.engine.open_by_symbol or self.stale is not None:
            return
        self.engine.on_trade(symbol, price)
        if self.engine.dirty_orders or self.engine.outbox:
            self._commit_quietly()

    def wants_trades(self, symbol: str) -> bool:
        """True when a print of ``symbol`` may matter to an open order (the simulator asks first)."""
        return symbol in self.engine.open_by_symbol

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
        if self.stale is not None:
            return
        now = self.clock()
        self.engine.sweep(now)
        self._roll_session(now)
        ts = int(now.timestamp())
        if ts - self._last_sample >= EQUITY_SAMPLE_SECONDS:
            self.engine.sample_equity(now)
        self._commit_quietly()

    def _roll_session(self, now: datetime) -> None:
        if now < self._next_close or self.stale is not None:
            return
        # last_equity is the equity at the previous session close (approximated by now when the
        # exchange was down at the close).
        self.last_equity = q9(self.equity())
        self.ledger.last_equity = self.last_equity
        self._next_close = self.calendar.next_close(now)
        self._write(kv={"last_equity": str(self.last_equity), "next_close": self._next_close.isoformat()})

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
        self._write(
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

    def _write(self, **changes: Any) -> None:
        """One store write; a database changed under this venue stops every later write."""
        if self.stale is not None:
            raise StaleStateError(self.stale)
        try:
            self.store.write(**changes)
        except StaleStateError as exc:
            self.stale = f"venue state is stale: {exc}; this exchange writes nothing more and stops"
            log.error("%s", self.stale)
            self.on_stale(self.stale)
            raise

    def _commit_quietly(self) -> None:
        """Commit from background work (quotes, prints, sweeps): a stale venue was said once."""
        with contextlib.suppress(StaleStateError):
            self._commit()

    def _stale_error(self) -> ApiError:
        return ApiError(503, INTERNAL, self.stale or "venue state is stale")

    def run(self, op: Callable[[], Any]) -> Any:
        """Run one engine operation and commit what it changed, even when it raised. Orders it
        accepted are matched right after the caller has answered (see :meth:`match_pending`).
        A stale venue refuses every operation with 503 and the reason."""
        if self.stale is not None:
            raise self._stale_error()
        try:
            return op()
        finally:
            try:
                self._commit()
            except StaleStateError:
                raise self._stale_error() from None
            self._schedule_matching()

    def match_pending(self) -> None:
        """Match the orders accepted since the last match and publish what happened to them."""
        if self.stale is not None:
            return
        self.engine.match_pending()
        self._commit_quietly()

    def _schedule_matching(self) -> None:
        if not self.engine.pending or self._match_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tools, synchronous tests): the next quote or sweep matches
            return
        self._match_handle = loop.call_soon(self._scheduled_match)

    def _scheduled_match(self) -> None:
        self._match_handle = None
        try:
            self.match_pending()
        except Exception:  # the sweep retries; a bug here must not go unseen
            log.exception("venue match failed")

    # ---- the account's equity (the REST layer writes the entities: http/entities.py) --------------
    def equity(self) -> Decimal:
        return self.ledger.equity(self.engine.quotes())
