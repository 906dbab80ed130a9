"""PositionCloser: close a position the way Alpaca lets it be closed, and say per symbol what happened.

At Alpaca, working orders hold the shares they would sell: a closing order that needs them is
refused ("insufficient qty available for order (requested: X, available: Y)"), also while a cancel
is still ``pending_cancel`` (the shares stay held until ``canceled`` arrives). So, per symbol:

1. cancel every working order of the symbol, bracket / OCO / OTO legs included (Heron's own orders
   through the engine, so they are journaled; orders placed elsewhere straight at the broker);
2. wait until each is really terminal (canceled, filled, expired...), bounded by the deadline;
3. read the broker's position again (a fill can arrive during ``pending_cancel``) and send one
   market order for what is left, with ``day`` for stocks and ``gtc`` for crypto (Alpaca accepts
   only ``gtc`` and ``ioc`` for crypto);
4. a refused close is retried with backoff (cancelling whatever appeared meanwhile) until the
   position is flat or the deadline passes; a new close is sent only once the previous one is
   terminal, so there is never more than one closing order working.

The outcome is a :class:`SymbolCloseResult` per symbol. Anything still open at the deadline is
reported loudly: an ERROR log line, an error :class:`NotificationEvent`, a ``close_result`` journal
record and the ``closing`` section of the state report (:meth:`PositionCloser.report_section`).

Runs on the event-loop thread. Time comes from the engine's clock; waiting goes through ``sleep``
(``asyncio.sleep`` by default, injected in tests), in steps of ``poll_s``; the broker is asked for
order states at most every ``rest_every_s`` (trade updates on the stream settle them sooner).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from services.broker.base import Broker, BrokerError, BrokerNotFound, OrderQuery
from services.domain.bus import EventBus
from services.domain.enums import JournalKind, OrderSide, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import Order, OrderRequest
from services.domain.symbols import is_crypto
from services.orders.close_results import CloseReport, SymbolCloseResult
from services.orders.journal import OrderJournal
from services.orders.records import OrderRecord, SubmitResult
from services.orders.store import OrderStore
from services.orders.transitions import OrderState
from services.risk.context import RiskReport
from services.storage.errors import StorageError, describe_db_error

log = logging.getLogger(__name__)
ZERO = Decimal(0)
SOURCE = "closing"
TRANSIENT_RISK_CHECKS = frozenset({"duplicate_order", "order_rate"})
KILL_SWITCH = "kill-switch"  # services.orders.engine.KILL_SWITCH: its orders skip the risk gate
MAX_FLATTEN_ROUNDS = 5  # cancel, wait, close, look again: late fills opened something


class CloserEngine(Protocol):
    """What closing needs of :class:`services.orders.engine.ExecutionEngine`, which owns the closer
    (a protocol, so that this module does not import the engine that imports it)."""

    broker: Broker
    store: OrderStore
    journal: OrderJournal
    bus: EventBus
    clock: Callable[[], datetime]

    def flush(self) -> None: ...

    async def submit(
        self, request: OrderRequest, *, source: str = "manual", closing: bool = False
    ) -> SubmitResult: ...

    async def preview_close(self, request: OrderRequest) -> RiskReport: ...

    async def cancel(self, order_key: str, *, source: str = "manual", say_refusal: bool = True) -> bool: ...

    async def refresh_order(self, rec: OrderRecord) -> None: ...

    async def resolve_intent(self, client_order_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Deadline:
    at: datetime  # on the engine's clock
    loop_at: float  # on the event loop's monotonic clock


class PositionCloser:
    """See the module docstring. One per engine (``ExecutionEngine.closer``)."""

    def __init__(
        self,
        engine: CloserEngine,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        deadline_s: float = 30.0,
        poll_s: float = 0.25,
        rest_every_s: float = 2.0,
        backoff_s: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
    ) -> None:
        self.engine = engine
        self.sleep = sleep
        self.deadline_s = deadline_s
        self.poll_s = poll_s
        self.rest_every_s = rest_every_s
        self.backoff_s = tuple(backoff_s)
        self.outcomes: dict[str, SymbolCloseResult] = {}  # latest outcome per symbol, for the report

    # --- public ----------------------------------------------------------------------------------
    async def close(self, symbol: str, *, qty: Decimal | None = None, source: str) -> SymbolCloseResult:
        """Close ``qty`` of ``symbol`` (all of it when None)."""
        if qty is not None and qty <= 0:
            raise ValueError(f"close quantity must be positive, got {qty}")
        result = await self._close(symbol, qty, source, self._deadline(), known_qty=None)
        self._report(result, source)
        return result

    async def flatten(self, *, source: str) -> CloseReport:
        """Close every position within one deadline. Every working order of every symbol is
        canceled and waited for FIRST: an order in ``pending_cancel`` can still fill (Alpaca
        "Orders", order lifecycle), and a fill after the positions were read would leave a position
        nobody closes. Then each position is closed, and the positions are read again: what a late
        fill opened meanwhile is closed too, until flat or the deadline."""
        deadline = self._deadline()
        latest: dict[str, SymbolCloseResult] = {}
        error = ""
        try:
            error = await self._flatten_rounds(source, deadline, latest)
        except asyncio.CancelledError:
            self._interrupted(source, latest)
            raise
        if error:
            if not latest:
                error += "; nothing was closed"
            log.error("flatten (%s): %s", source, error)
            self._notify("error", f"flatten: {error}")
            # every position Heron knows of is named, so the report says per symbol what is open
            for symbol, pos in sorted(self.engine.store.positions.items()):
                if pos.qty != 0 and symbol not in latest:
                    latest[symbol] = SymbolCloseResult(symbol, False, pos.qty, pos.qty, reason=error,
                                                       at=self.engine.clock())  # fmt: skip
        for result in latest.values():
            self._report(result, source)
        return CloseReport(tuple(latest[sym] for sym in sorted(latest)), error=error)

    def _interrupted(self, source: str, latest: dict[str, SymbolCloseResult]) -> None:
        """Shutdown stopped a flatten before its closes began (or between rounds): every position
        Heron knows of that is not reported yet is reported still open, loudly."""
        why = "interrupted before it was done (the terminal is shutting down); check the position"
        now = self.engine.clock()
        for symbol, pos in sorted(self.engine.store.positions.items()):
            done = latest.get(symbol)
            if pos.qty == 0 or (done is not None and done.complete):
                continue
            mine = self.outcomes.get(symbol)
            if mine is not None and mine.at is not None and mine.at >= now and not mine.complete:
                continue  # its close already said so
            self._report(SymbolCloseResult(symbol, False, pos.qty, pos.qty, reason=why, at=now), source)

    async def _flatten_rounds(
        self, source: str, deadline: _Deadline, latest: dict[str, SymbolCloseResult]
    ) -> str:
        """The rounds of :meth:`flatten`; fills ``latest`` per symbol, returns an error text or ""."""
        error = ""
        refused: dict[str, list[str]] = {}
        blocked = await self._blocked_closes(source)  # their orders are left alone
        latest.update(blocked)
        for _ in range(MAX_FLATTEN_ROUNDS):
            waiting: list[tuple[str, str | None]] = []
            for symbol in await self._working_symbols():
                if symbol in blocked:
                    continue
                _, more, no = await self._cancel_working(symbol, source)
                waiting += more
                refused.setdefault(symbol, []).extend(no)
            await self._wait_terminal(_unique(waiting), deadline)  # what is left is reported per symbol
            positions = None
            while positions is None:
                try:
                    positions = await self.engine.broker.get_positions()
                except BrokerError as exc:
                    error = f"NOT FLAT: the broker's positions could not be read ({exc.message})"
                    if self._past(deadline):
                        return error
                    log.warning("flatten (%s): %s; retrying until the deadline", source, error)
                    await self.sleep(self.backoff_s[-1])
            error = ""
            held = [p for p in positions if p.qty != 0 and p.symbol not in blocked]
            if not held:
                break
            results = await asyncio.gather(
                *(self._close(p.symbol, None, source, deadline, known_qty=p.qty) for p in held)
            )
            latest.update((r.symbol, r) for r in results)
            if self._past(deadline) or any(not r.complete for r in results):
                break
        for symbol, no in refused.items():  # the cancels refused before the closes: in the report too
            if no:
                now = self.engine.clock()
                done = latest.get(symbol) or SymbolCloseResult(symbol, True, ZERO, ZERO, at=now)
                latest[symbol] = replace(done, cancel_refused=(*no, *done.cancel_refused))
        return error

    async def _blocked_closes(self, source: str) -> dict[str, SymbolCloseResult]:
        """Per position whose closing order the risk gate would refuse: a result saying so, found
        before anything is canceled (a flatten leaves that symbol's orders, its stops, working)."""
        try:
            positions = await self.engine.broker.get_positions()
        except BrokerError:
            return {}  # the rounds read them again and say so
        out: dict[str, SymbolCloseResult] = {}
        for p in positions:
            if p.qty == 0:
                continue
            blocked = await self._precheck(p.symbol, p.qty, ZERO, source)
            if blocked is not None:
                out[p.symbol] = blocked
        return out

    async def _working_symbols(self) -> list[str]:
        """Symbols with a working order, Heron's own and the broker's (orders placed elsewhere)."""
        symbols = {r.symbol for r in self.engine.store.open_orders() if not r.state.is_terminal}
        try:
            listed = await self.engine.broker.list_orders(OrderQuery(status="open"))
        except BrokerError as exc:
            log.warning("flatten: open orders could not be listed (%s)", exc.message)
            listed = []
        symbols |= {o.symbol for o in _with_legs(listed) if not o.status.is_terminal}
        return sorted(symbols)

    def report_section(self) -> dict[str, Any] | None:
        """The state report's ``closing`` section: the latest outcome per symbol; None if none yet."""
        if not self.outcomes:
            return None
        return {s: r.to_json() for s, r in sorted(self.outcomes.items())}

    # --- one symbol ------------------------------------------------------------------------------
    def _deadline(self) -> _Deadline:
        return _Deadline(
            self.engine.clock() + timedelta(seconds=self.deadline_s),
            asyncio.get_running_loop().time() + self.deadline_s,
        )

    def _past(self, deadline: _Deadline) -> bool:
        # the injected clock decides; the loop's monotonic time bounds it should that clock stand still
        return self.engine.clock() >= deadline.at or asyncio.get_running_loop().time() >= deadline.loop_at

    async def _close(
        self, symbol: str, qty: Decimal | None, source: str, deadline: _Deadline, *, known_qty: Decimal | None
    ) -> SymbolCloseResult:
        try:
            return await self._close_steps(symbol, qty, source, deadline, known_qty=known_qty)
        except asyncio.CancelledError:
            # Shutdown (or the caller) stopped the close before it was done: say so loudly, per
            # symbol, like any close that is not flat, before letting the cancellation through.
            last = known_qty if known_qty is not None else ZERO
            why = "interrupted before it was done (the terminal is shutting down); check the position"
            self._report(SymbolCloseResult(symbol, False, last, last, reason=why, at=self.engine.clock()),
                         source)  # fmt: skip
            raise

    async def _close_steps(
        self, symbol: str, qty: Decimal | None, source: str, deadline: _Deadline, *, known_qty: Decimal | None
    ) -> SymbolCloseResult:
        engine = self.engine
        before, problem = await self._first_position(symbol, deadline, known_qty)
        if before is None:
            return SymbolCloseResult(symbol, False, ZERO, ZERO, reason=problem, at=engine.clock())
        if before == 0:
            return SymbolCloseResult(symbol, True, ZERO, ZERO, at=engine.clock())
        sign = Decimal(1) if before > 0 else Decimal(-1)
        amount = abs(before) if qty is None else min(qty, abs(before))
        target = before - sign * amount  # the signed position we end at
        if (blocked := await self._precheck(symbol, before, target, source)) is not None:
            return blocked
        current = before
        canceled = attempts = backoff = 0
        sent, refused, reason = list[str](), list[str](), ""
        while not _closed(current, sign, target):
            # 1-2: no working order of the symbol may hold the shares; wait until each is terminal
            n, waiting, no = await self._cancel_working(symbol, source)
            canceled += n
            refused += no
            still = await self._wait_terminal(waiting, deadline)
            if still:
                reason = self._pending_reason(still)
                break
            # 3: what is left, from the broker (fills can arrive while a cancel is pending)
            position, problem = await self._position(symbol)
            if position is None:
                reason = problem
                if self._past(deadline):
                    break
                await self.sleep(self.backoff_s[0])
                continue
            current = position
            if _closed(current, sign, target):
                break
            if self._past(deadline):
                reason = reason or "the deadline passed before a closing order could be sent"
                break
            res = await engine.submit(_close_request(symbol, current, target), source=source, closing=True)
            if res.state is not OrderState.DENIED:
                attempts += 1  # it reached the broker (refused or not)
            if res.state is OrderState.DENIED and not _transient(res.report):
                reason = f"closing order not sent: {res.message}"
                break
            if res.state in (OrderState.DENIED, OrderState.REJECTED):
                # 4: refused (typically "insufficient qty available": something still holds the
                # shares); back off, cancel again and retry until flat or the deadline
                reason = _refused(symbol, res.state, res.message)
                if self._past(deadline):
                    break
                await self.sleep(self.backoff_s[min(backoff, len(self.backoff_s) - 1)])
                backoff += 1
                continue
            assert res.client_order_id is not None
            sent.append(res.client_order_id)
            current, unsettled = await self._after_close_order(
                res.client_order_id, symbol, current, sign, deadline
            )
            if unsettled:
                reason = unsettled
                break
            if not _closed(current, sign, target):
                reason = f"closing order {res.client_order_id} ended without closing everything"
                await self.sleep(self.backoff_s[min(backoff, len(self.backoff_s) - 1)])
                backoff += 1
        complete = _closed(current, sign, target)
        return SymbolCloseResult(
            symbol,
            complete,
            before,
            current,
            canceled=canceled,
            attempts=attempts,
            close_orders=tuple(sent),
            reason="" if complete else (reason or "the deadline passed"),
            at=engine.clock(),
            cancel_refused=tuple(refused),
        )

    async def _precheck(
        self, symbol: str, before: Decimal, target: Decimal, source: str
    ) -> SymbolCloseResult | None:
        """The close's outcome when the risk gate would refuse its closing order, asked BEFORE
        anything is canceled (None when it would pass): a close that cannot send its closing order
        must not first cancel the working orders, bracket stops included, and leave the position
        unprotected. The kill switch's closes skip the gate (the engine sends them unchecked), so
        they skip this too."""
        if source == KILL_SWITCH:
            return None
        report = await self.engine.preview_close(_close_request(symbol, before, target))
        if report.passed or _transient(report):
            return None
        why = f"closing order would be refused, nothing was canceled: {report.explain()}"
        return SymbolCloseResult(symbol, False, before, before, reason=why, at=self.engine.clock())

    async def _first_position(
        self, symbol: str, deadline: _Deadline, known_qty: Decimal | None
    ) -> tuple[Decimal | None, str]:
        """The position to close: ``known_qty``, else the broker's, asked until the deadline
        (None and why when it could not be read)."""
        before, problem = known_qty, ""
        while before is None:
            before, problem = await self._position(symbol)
            if before is None:
                if self._past(deadline):
                    return None, problem
                await self.sleep(self.backoff_s[0])
        return before, problem

    async def _after_close_order(
        self, cid: str, symbol: str, current: Decimal, sign: Decimal, deadline: _Deadline
    ) -> tuple[Decimal, str]:
        """Wait for a closing order to end; the position it leaves, and why not when it is still
        working at the deadline ("" once it ended)."""
        unsettled = await self._wait_terminal([(cid, None)], deadline)
        rec = self.engine.store.find(client_order_id=cid)
        position, _problem = await self._position(symbol)
        filled = rec.filled_qty if rec is not None and not unsettled else ZERO
        expected = current - (sign * filled)
        if position is not None and abs(position) <= abs(expected):
            current = position
        elif filled > 0:
            # the close filled but the position read does not show it yet: never send a second
            # close on a stale quantity (it would open the opposite position)
            current = expected
        elif position is not None:
            current = position
        if unsettled:
            state = rec.state.value if rec is not None else "unknown"
            return current, f"closing order {cid} still {state} at the deadline"
        return current, ""

    async def _position(self, symbol: str) -> tuple[Decimal | None, str]:
        try:
            pos = await self.engine.broker.get_position(symbol)
        except BrokerError as error:
            return None, f"the broker's position could not be read ({error.message})"
        return (pos.qty if pos is not None else ZERO), ""

    # --- cancel and wait -------------------------------------------------------------------------
    async def _cancel_working(
        self, symbol: str, source: str
    ) -> tuple[int, list[tuple[str, str | None]], list[str]]:
        """Cancel every working order of ``symbol``; returns (cancels requested, orders to wait for,
        cancels refused). A refused cancel is said at once at ERROR (the close goes on and waits
        for the order until the deadline: it may have just filled).

        Orders to wait for are ``(client id, None)`` for Heron's own and ``("", broker id)`` for
        orders Heron does not know (placed from another app).
        """
        engine = self.engine
        count = 0
        waiting: list[tuple[str, str | None]] = []
        refused: list[str] = []
        asked: set[str] = set()
        known = [r for r in engine.store.open_orders() if r.symbol == symbol]
        known.sort(key=lambda r: r.parent_client_order_id is not None)  # parents first: legs go with them
        for rec in known:
            if rec.state.is_terminal:
                continue
            if rec.state is not OrderState.PENDING_CANCEL:
                if await engine.cancel(rec.client_order_id, source=source, say_refusal=False):
                    count += 1
                    asked.add(rec.client_order_id)
                elif _refused_cancel(rec, asked):
                    refused.append(self._cancel_refused(symbol, rec.client_order_id, "the broker refused it"))
            waiting.append((rec.client_order_id, None))
        try:
            listed = await engine.broker.list_orders(OrderQuery(status="open", symbols=(symbol,)))
        except BrokerError as error:
            log.warning("close %s: open orders could not be listed (%s)", symbol, error.message)
            listed = []
        for order in _with_legs(listed):
            if order.symbol != symbol or order.status.is_terminal:
                continue
            mine = engine.store.find(client_order_id=order.client_order_id, broker_order_id=order.id)
            if mine is not None:
                if mine.state.is_terminal or mine.cancel_requested:
                    continue
                if await engine.cancel(mine.client_order_id, source=source, say_refusal=False):
                    count += 1
                waiting.append((mine.client_order_id, None))
                continue
            try:
                await engine.broker.cancel_order(order.id)
                engine.journal.append(
                    JournalKind.CANCEL_REQUESTED, order.client_order_id, source, broker_order_id=order.id
                )
                count += 1
            except BrokerNotFound as error:
                log.info("close %s: cancel of %s: %s", symbol, order.id, error.message)
            except BrokerError as error:
                refused.append(self._cancel_refused(symbol, order.id, error.message))
            waiting.append(("", order.id))
        return count, _unique(waiting), refused

    def _cancel_refused(self, symbol: str, order_id: str, why: str) -> str:
        log.error("close %s: the cancel of working order %s was refused (%s)", symbol, order_id, why)
        self._notify("error", f"close {symbol}: the cancel of {order_id} was refused ({why})")
        return f"{order_id}: {why}"

    async def _wait_terminal(
        self, orders: list[tuple[str, str | None]], deadline: _Deadline
    ) -> list[tuple[str, str | None]]:
        """Wait until every order is terminal; returns those still not terminal at the deadline."""
        pending = list(orders)
        last_rest = self.engine.clock()
        while True:
            pending = [o for o in pending if not await self._is_terminal(o, rest=False)]
            if not pending or self._past(deadline):
                return pending
            await self.sleep(self.poll_s)
            now = self.engine.clock()
            if (now - last_rest).total_seconds() >= self.rest_every_s:
                last_rest = now
                pending = [o for o in pending if not await self._is_terminal(o, rest=True)]
                if not pending:
                    return pending

    async def _is_terminal(self, key: tuple[str, str | None], *, rest: bool) -> bool:
        cid, broker_id = key
        engine = self.engine
        if cid:
            rec = engine.store.find(client_order_id=cid)
            if rec is None:
                return True
            if rec.state.is_terminal:
                return True
            if rest:
                if rec.broker_order_id is None:
                    await engine.resolve_intent(rec.client_order_id)
                else:
                    await engine.refresh_order(rec)
                return rec.state.is_terminal
            return False
        if not rest or broker_id is None:
            return False
        try:
            order = await engine.broker.get_order(broker_id)
        except BrokerError:
            return False
        return order.status.is_terminal

    def _pending_reason(self, waiting: list[tuple[str, str | None]]) -> str:
        names = []
        for cid, broker_id in waiting:
            rec = self.engine.store.find(client_order_id=cid) if cid else None
            state = rec.state.value if rec is not None else "working"
            names.append(f"{cid or broker_id} ({state})")
        return (
            f"{len(names)} working order(s) not yet canceled at the deadline, holding the shares: "
            + ", ".join(names)
        )

    # --- reporting -------------------------------------------------------------------------------
    def _report(self, result: SymbolCloseResult, source: str) -> None:
        if result.qty_before == 0 and result.complete and not result.cancel_refused:
            return
        self.outcomes[result.symbol] = result
        engine = self.engine
        engine.journal.append(
            JournalKind.CLOSE_RESULT, None, source, symbol=result.symbol, **result.to_json()
        )
        try:
            engine.flush()
        except (SQLAlchemyError, StorageError) as error:
            log.error("close %s: outcome not journaled yet (%s)", result.symbol, describe_db_error(error))
        if result.complete:
            log.info("close %s (%s): %s", result.symbol, source, result.message)
            return
        msg = f"close {result.symbol} ({source}): {result.message}"
        log.error(msg)
        self._notify("error", f"{result.symbol} still open: {result.message}")

    def _notify(self, level: str, message: str) -> None:
        self.engine.bus.publish(NotificationEvent(self.engine.clock(), level, SOURCE, message))


def _refused_cancel(rec: OrderRecord, asked: set[str]) -> bool:
    """The engine did not send (or the broker refused) this cancel and the order still works; a leg
    of a parent canceled just now goes with its parent and is not a refusal."""
    return not (rec.state.is_terminal or rec.cancel_requested) and rec.parent_client_order_id not in asked


def _closed(position: Decimal, sign: Decimal, target: Decimal) -> bool:
    """Closed down to the target (or beyond it toward zero, e.g. an exit leg that filled)."""
    return position == 0 or (position > 0) != (sign > 0) or abs(position) <= abs(target)


def _close_request(symbol: str, current: Decimal, target: Decimal) -> OrderRequest:
    """A market order taking the position from ``current`` to ``target``."""
    left = abs(current) - abs(target)
    side = OrderSide.SELL if current > 0 else OrderSide.BUY
    tif = TimeInForce.GTC if is_crypto(symbol) else TimeInForce.DAY
    return OrderRequest(symbol, side, OrderType.MARKET, tif, qty=left)


def _refused(symbol: str, state: OrderState, message: str) -> str:
    """Why a closing order was refused (logged: the close retries)."""
    by = "the risk gate" if state is OrderState.DENIED else "the broker"
    log.warning("close %s: closing order refused by %s (%s); retrying", symbol, by, message)
    return f"closing order refused by {by}: {message}"


def _transient(report: RiskReport | None) -> bool:
    """A risk denial that time alone lifts (a retry just after a refused close is a "duplicate")."""
    return report is not None and all(c.name in TRANSIENT_RISK_CHECKS for c in report.failures)


def _with_legs(orders: list[Order]) -> list[Order]:
    out: list[Order] = []
    for order in orders:
        out.append(order)
        out.extend(_with_legs(list(order.legs)))
    return out


def _unique(items: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    return list(dict.fromkeys(items))
