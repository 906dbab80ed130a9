"""The market simulator: seeded quotes, trades and bars for every symbol of the universe.

Each call to :meth:`MarketSimulator.step` produces, in one vectorised numpy batch, the messages of
the interval since the previous step (an asyncio timer calls it every ``tick_interval`` seconds; tests
call it directly with a fake clock). Prices follow a log random walk with stochastic volatility;
quotes sit on the tick grid around the mid with a random spread; trades print at the bid, the ask or
the midpoint. Stocks only trade while the calendar says the market is open; crypto trades 24/7.

Minute bars (``b``) are the aggregation of the trades the stream really sent in that minute, with
``n`` (trade count) and ``vw`` (VWAP); now and then a late print arrives just after the minute closed,
followed by an updated bar (``u``) that includes it; a daily bar (``d``) follows every minute bar.
Each symbol starts at the close of the last completed minute of the generated history, and the
finished live minutes are kept (bounded) so history joins the live stream without a jump.

Messages are Alpaca stream dicts with ``t`` as :class:`msgpack.Timestamp`. Everything runs on the
exchange's event-loop thread.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack
import numpy as np

from services.exchange.contracts import NBBO, Instrument
from services.exchange.history import MINUTE_NS, NS, Bars, HistoryGenerator, ny_date, ny_midnight_ns
from services.exchange.sessions import MarketCalendar

log = logging.getLogger(__name__)

Message = dict[str, Any]
Listener = Callable[[list[Message]], None]

DEFAULT_RATE = 300.0  # messages per second, all symbols together
MAX_RATE = 2_000_000.0
LIVE_MINUTES_KEPT = 10_000  # per symbol; older live minutes are forgotten
_TAPE = {"NASDAQ": "C", "NYSE": "A", "ARCA": "B"}
_BUSY = {"SPY": 3.0, "QQQ": 2.0, "AAPL": 2.0, "NVDA": 2.0, "TSLA": 2.0, "BTC/USD": 1.5}


def _ts(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


class MarketSimulator:
    """Seeded market for ``universe``; implements :class:`MarketView` and ``LiveMinutes``.

    ``clock`` returns the current UTC time (default: the wall clock). Listeners get each step's
    batch of messages (time-ordered); ``on_nbbo`` callbacks get each symbol whose NBBO changed.
    """

    def __init__(
        self,
        universe: Mapping[str, Instrument],
        calendar: MarketCalendar,
        history: HistoryGenerator,
        *,
        seed: int = 0,
        rate: float = DEFAULT_RATE,
        clock: Callable[[], datetime] | None = None,
        tick_interval: float = 0.02,
    ) -> None:
        self.universe = universe
        self.calendar = calendar
        self.history = history
        self.tick_interval = tick_interval
        self._clock = clock
        self._rng = np.random.default_rng([int(seed), 0x5EED])
        self._rate = float(rate)
        self._listeners: list[Listener] = []
        self._nbbo_listeners: list[Callable[[str], None]] = []
        self._pending: list[Message] = []
        self._task: asyncio.Task[None] | None = None
        self.stats: dict[str, int] = {"steps": 0, "messages": 0, "trades": 0, "quotes": 0, "bars": 0,
                                      "updated_bars": 0, "step_errors": 0}

        syms = list(universe)
        self.symbols = syms
        self.index = {s: i for i, s in enumerate(syms)}
        n = len(syms)
        insts = [universe[s] for s in syms]
        self._crypto = np.array([i.is_crypto for i in insts], dtype=bool)
        self._tick = np.array([float(i.tick) for i in insts])
        self._dec = [max(0, -int(i.tick.as_tuple().exponent)) for i in insts]
        self._scale = np.power(10.0, np.array(self._dec, dtype=np.float64))
        self._tape = [_TAPE.get(i.exchange, "C") for i in insts]
        self._weight = np.array([_BUSY.get(s, 1.0) for s in syms])
        # Per-second volatility of the log price (daily vol spread over the session length).
        self._sigma = np.where(self._crypto, 0.025 / np.sqrt(86_400), 0.014 / np.sqrt(23_400))
        self._logvol = np.zeros(n)
        self._halted = np.zeros(n, dtype=bool)

        now = self.now_ns()
        self._last_ns = now
        self._minute = now - now % MINUTE_NS
        self._mid = np.empty(n)
        self._prev_close = np.empty(n)
        self._live_since: list[int] = [0] * n
        for i, s in enumerate(syms):
            last = history.last_minute_before(s, now)
            price = last[1] if last else float(insts[i].base_price)
            self._mid[i] = price
            self._live_since[i] = (last[0] + MINUTE_NS) if last else self._minute
            prev = history.last_minute_before(s, ny_midnight_ns(ny_date(now)))
            self._prev_close[i] = prev[1] if prev else price
        self._spread = np.maximum(np.round(self._mid * np.where(self._crypto, 1.5e-4, 1e-4) / self._tick), 1)
        b, a = self._quote_prices(self._mid, self._spread, np.arange(n))
        self._bid, self._ask = b, a
        self._bid_size = np.where(self._crypto, 0.5, 300.0)
        self._ask_size = np.where(self._crypto, 0.5, 300.0)
        self._quote_ns = np.full(n, now, dtype=np.int64)
        self._last_price = self._mid.copy()
        self._last_size = np.where(self._crypto, 0.01, 100.0)
        self._last_trade_ns = np.array([ls - MINUTE_NS // 60 for ls in self._live_since], dtype=np.int64)
        self._trade_id = 1
        # Running minute accumulators.
        self._m_o = np.zeros(n)
        self._m_h = np.zeros(n)
        self._m_l = np.zeros(n)
        self._m_c = np.zeros(n)
        self._m_v = np.zeros(n)
        self._m_pv = np.zeros(n)
        self._m_n = np.zeros(n, dtype=np.int64)
        # Finished live minutes: per symbol parallel lists of start ns and bar rows.
        self._live_t: list[list[int]] = [[] for _ in range(n)]
        self._live_rows: list[list[tuple[int, float, float, float, float, float, int, float]]] = [
            [] for _ in range(n)
        ]
        # Running day (New York date) per symbol: the generated minutes before live start + live.
        self._day_key = ny_midnight_ns(ny_date(now))
        self._day: list[list[float] | None] = [self._day_from_history(s, i) for i, s in enumerate(syms)]

    # ------------------------------------------------------------------------------------------
    # clock, control

    def now_ns(self) -> int:
        if self._clock is None:
            return time.time_ns()
        return int(self._clock().timestamp() * 1e6) * 1000

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, msgs_per_s: float) -> None:
        """Total message rate across all symbols (0 = silent; storm ≥ 100k)."""
        if not (0 <= msgs_per_s <= MAX_RATE):
            raise ValueError(f"rate must be between 0 and {MAX_RATE:.0f} messages/s")
        self._rate = float(msgs_per_s)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def on_nbbo(self, callback: Callable[[str], None]) -> None:
        """``callback(symbol)`` after every NBBO change (the venue's ``on_quote``)."""
        self._nbbo_listeners.append(callback)

    def halt(self, symbol: str, halted: bool) -> None:
        """Halt or resume a symbol; emits a trading status message (``s``) to the stream."""
        i = self.index[symbol]
        if bool(self._halted[i]) == halted:
            return
        self._halted[i] = halted
        now = self.now_ns()
        self._pending.append(
            {"T": "s", "S": symbol, "sc": "H" if halted else "T",
             "sm": "Trading Halt" if halted else "Trading Resumption",
             "rc": "T1" if halted else "T2",
             "rm": "Halt News Pending" if halted else "Halt News Dissemination",
             "t": _ts(now), "z": self._tape[i]}
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="market-simulator")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.step(self.now_ns())
            except Exception:
                self.stats["step_errors"] += 1
                log.exception("market simulator step failed")

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
    # LiveMinutes (history join) and latest values for REST

    def live_since_ns(self, symbol: str) -> int | None:
        i = self.index.get(symbol)
        return None if i is None else self._live_since[i]

    def live_bars(self, symbol: str, lo_ns: int, hi_ns: int) -> Bars:
        i = self.index[symbol]
        ts = self._live_t[i]
        a, b = bisect.bisect_left(ts, lo_ns), bisect.bisect_left(ts, hi_ns)
        return Bars.from_rows(self._live_rows[i][a:b])

    def latest_trade(self, symbol: str) -> tuple[int, float, float, int]:
        """(t ns, price, size, trade id) of the last trade."""
        i = self.index[symbol]
        return (int(self._last_trade_ns[i]), float(self._last_price[i]), float(self._last_size[i]),
                self._trade_id)

    def latest_quote(self, symbol: str) -> tuple[int, float, float, float, float]:
        """(t ns, bid, bid size, ask, ask size)."""
        i = self.index[symbol]
        return (int(self._quote_ns[i]), float(self._bid[i]), float(self._bid_size[i]),
                float(self._ask[i]), float(self._ask_size[i]))

    def running_day(self, symbol: str) -> tuple[int, float, float, float, float, float, int, float] | None:
        """Today's daily bar so far (t = New York midnight), running minute included."""
        i = self.index[symbol]
        d = self._day[i]
        rows: list[tuple[int, float, float, float, float, float, int, float]] = []
        if d is not None:
            rows.append(self._day_row(d))
        if self._m_n[i] > 0:
            o, h, low, c, v, pv, n = (float(self._m_o[i]), float(self._m_h[i]), float(self._m_l[i]),
                                      float(self._m_c[i]), float(self._m_v[i]), float(self._m_pv[i]),
                                      int(self._m_n[i]))
            if d is None:
                return (self._day_key, o, h, low, c, v, n, round(pv / v, 4) if v else c)
            t0, o0, h0, l0, _, v0, n0, vw0 = rows[0]
            vt = v0 + v
            return (t0, o0, max(h0, h), min(l0, low), c, vt, n0 + n,
                    round((vw0 * v0 + pv) / vt, 4) if vt else c)
        return rows[0] if rows else None

    # ------------------------------------------------------------------------------------------
    # generation

    def _quote_prices(
        self, mid: np.ndarray, spread: np.ndarray, idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        tick = self._tick[idx]
        bid = np.floor((mid - spread * tick / 2) / tick + 1e-9) * tick
        bid = np.maximum(bid, tick)
        ask = bid + spread * tick
        scale = self._scale[idx]
        return np.round(bid * scale) / scale, np.round(ask * scale) / scale

    def step(self, now_ns: int) -> list[Message]:
        """Generate everything between the previous step and ``now_ns``; deliver it; return it."""
        out = self._pending
        self._pending = []
        changed: set[int] = set()
        t = self._last_ns
        if now_ns - t > 10 * MINUTE_NS:  # after a long stall, skip ahead instead of replaying
            self._close_minute(out)
            t = now_ns - MINUTE_NS // 60
            self._minute = t - t % MINUTE_NS
        while t < now_ns:
            boundary = self._minute + MINUTE_NS
            seg_end = min(now_ns, boundary)
            self._generate(t, seg_end, out, changed)
            t = seg_end
            if t >= boundary:
                self._close_minute(out)
                self._minute = boundary
        self._last_ns = max(self._last_ns, now_ns)
        self.stats["steps"] += 1
        self.stats["messages"] += len(out)
        for i in changed:
            sym = self.symbols[i]
            for cb in self._nbbo_listeners:
                try:
                    cb(sym)
                except Exception:
                    log.exception("NBBO listener failed for %s", sym)
        if out:
            for listener in list(self._listeners):
                try:
                    listener(out)
                except Exception:
                    log.exception("market data listener failed")
        return out

    def _active(self, ns: int) -> np.ndarray:
        open_now = self.calendar.is_open(datetime.fromtimestamp(ns / NS, UTC))
        return (self._crypto | open_now) & ~self._halted

    def _generate(self, t0: int, t1: int, out: list[Message], changed: set[int]) -> None:
        dt = (t1 - t0) / NS
        if dt <= 0:
            return
        rng = self._rng
        active = self._active(t1)
        if not active.any():
            return
        n = len(self.symbols)
        # Stochastic volatility (mean-reverting log vol) and the mid's random walk.
        self._logvol += -0.01 * self._logvol * dt + 0.05 * np.sqrt(dt) * rng.standard_normal(n)
        np.clip(self._logvol, -1.0, 1.5, out=self._logvol)
        old_mid = self._mid.copy()
        move = self._sigma * np.exp(self._logvol) * np.sqrt(dt) * rng.standard_normal(n)
        self._mid = np.where(active, self._mid * np.exp(move), self._mid)
        k = int(rng.poisson(self._rate * min(dt, 1.0)))
        if k == 0:
            return
        w = self._weight * active
        idx = rng.choice(n, size=k, p=w / w.sum())
        offs = np.sort(rng.integers(0, max(t1 - t0, 1), k))
        ts = t0 + offs
        frac = offs / max(t1 - t0, 1)
        emid = old_mid[idx] + (self._mid[idx] - old_mid[idx]) * frac
        crypto = self._crypto[idx]
        is_trade = rng.random(k) < np.where(crypto, 0.3, 0.4)
        spread = self._spread[idx] + rng.integers(0, 2, k)
        bid, ask = self._quote_prices(emid, spread, idx)
        tick = self._tick[idx]
        side = rng.random(k)
        mid_px = np.round(np.round(((bid + ask) / 2) / tick) * tick * self._scale[idx]) / self._scale[idx]
        price = np.where(side < 0.45, ask, np.where(side < 0.9, bid, mid_px))
        tsize = np.where(crypto, np.round(rng.lognormal(-4.0, 1.3, k), 6),
                         np.maximum(np.round(rng.lognormal(3.5, 1.2, k)), 1))
        tsize = np.maximum(tsize, np.where(crypto, 1e-6, 1))
        bsz = np.where(crypto, np.round(rng.uniform(0.01, 3.0, k), 4), rng.integers(1, 12, k) * 100.0)
        asz = np.where(crypto, np.round(rng.uniform(0.01, 3.0, k), 4), rng.integers(1, 12, k) * 100.0)

        # Update the running minute bars from the trades (vectorised per symbol).
        tr = np.flatnonzero(is_trade)
        if len(tr):
            ti, tp, tq = idx[tr], price[tr], tsize[tr]
            uniq, first = np.unique(ti, return_index=True)
            _, last_rev = np.unique(ti[::-1], return_index=True)
            last = len(ti) - 1 - last_rev
            fresh = self._m_n[uniq] == 0
            self._m_o[uniq[fresh]] = tp[first[fresh]]
            self._m_h[uniq] = np.where(fresh, -np.inf, self._m_h[uniq])
            self._m_l[uniq] = np.where(fresh, np.inf, self._m_l[uniq])
            np.maximum.at(self._m_h, ti, tp)
            np.minimum.at(self._m_l, ti, tp)
            self._m_c[uniq] = tp[last]
            np.add.at(self._m_v, ti, tq)
            np.add.at(self._m_pv, ti, tp * tq)
            np.add.at(self._m_n, ti, 1)
            self._last_price[uniq] = tp[last]
            self._last_size[uniq] = tq[last]
            self._last_trade_ns[uniq] = ts[tr][last]
        qu = np.flatnonzero(~is_trade)
        if len(qu):
            rev_first = np.unique(idx[qu][::-1], return_index=True)[1]
            lastq = qu[len(qu) - 1 - rev_first]
            syms_q = idx[lastq]
            self._bid[syms_q] = bid[lastq]
            self._ask[syms_q] = ask[lastq]
            self._bid_size[syms_q] = bsz[lastq]
            self._ask_size[syms_q] = asz[lastq]
            self._quote_ns[syms_q] = ts[lastq]
            changed.update(syms_q.tolist())

        # Build the messages (one Python dict each; the only per-message Python work).
        symbols, tape = self.symbols, self._tape
        tid = self._trade_id
        self._trade_id += len(tr)
        trades = qs = 0
        for i, t, tr_, p, q, b, bs, a, as_, c in zip(
            idx.tolist(), ts.tolist(), is_trade.tolist(), price.tolist(), tsize.tolist(),
            bid.tolist(), bsz.tolist(), ask.tolist(), asz.tolist(), crypto.tolist(), strict=True
        ):
            stamp = msgpack.Timestamp.from_unix_nano(t)
            if tr_:
                tid += 1
                if c:
                    out.append({"T": "t", "S": symbols[i], "p": p, "s": q, "t": stamp,
                                "i": tid, "tks": "B" if p >= a else "S"})
                else:
                    out.append({"T": "t", "S": symbols[i], "i": tid, "x": "V", "p": p,
                                "s": int(q), "c": ["@"], "z": tape[i], "t": stamp})
                trades += 1
            else:
                if c:
                    out.append({"T": "q", "S": symbols[i], "bp": b, "bs": bs, "ap": a,
                                "as": as_, "t": stamp})
                else:
                    out.append({"T": "q", "S": symbols[i], "bx": "V", "bp": b, "bs": int(bs),
                                "ax": "V", "ap": a, "as": int(as_), "c": ["R"], "z": tape[i],
                                "t": stamp})
                qs += 1
        self.stats["trades"] += trades
        self.stats["quotes"] += qs
        # Crypto order book snapshots for crypto symbols whose quote changed in this step.
        for i in sorted(changed):
            if self._crypto[i]:
                out.append(self._orderbook(i, int(self._quote_ns[i])))

    def _orderbook(self, i: int, ns: int) -> Message:
        d, tick = self._dec[i], float(self._tick[i])
        bid, ask = float(self._bid[i]), float(self._ask[i])
        bids = [{"p": round(bid - k * tick * 3, d), "s": round(float(self._bid_size[i]) * (1 + k), 4)}
                for k in range(5)]
        asks = [{"p": round(ask + k * tick * 3, d), "s": round(float(self._ask_size[i]) * (1 + k), 4)}
                for k in range(5)]
        return {"T": "o", "S": self.symbols[i], "t": _ts(ns), "b": bids, "a": asks, "r": False}

    def orderbook(self, symbol: str) -> Message:
        """A five-level synthetic book around the current NBBO (crypto latest/orderbooks)."""
        i = self.index[symbol]
        return self._orderbook(i, int(self._quote_ns[i]))

    def _close_minute(self, out: list[Message]) -> None:
        minute = self._minute
        done = np.flatnonzero(self._m_n > 0)
        if len(done) == 0:
            return
        day_key = ny_midnight_ns(ny_date(minute))
        if day_key != self._day_key:
            self._day_key = day_key
            for i in range(len(self.symbols)):
                if self._day[i] is not None:
                    self._prev_close[i] = self._day[i][4]  # type: ignore[index]
                self._day[i] = None
        stamp = _ts(minute)
        late: list[Message] = []
        rng = self._rng
        for i in done.tolist():
            v = float(self._m_v[i])
            row = (minute, float(self._m_o[i]), float(self._m_h[i]), float(self._m_l[i]), float(self._m_c[i]),
                   v, int(self._m_n[i]), round(float(self._m_pv[i]) / v, 4) if v else float(self._m_c[i]))
            out.append(self._bar_msg("b", self.symbols[i], row, stamp))
            self.stats["bars"] += 1
            # Now and then a late print for the minute that just closed, and the updated bar.
            if rng.random() < 0.02:
                p = float(self._m_c[i])
                q = float(self._last_size[i])
                tid = self._trade_id = self._trade_id + 1
                t_late = minute + MINUTE_NS - 1_000_000 * int(rng.integers(1, 900))
                self._dec[i]
                sym = self.symbols[i]
                if self._crypto[i]:
                    late.append({"T": "t", "S": sym, "p": p, "s": q, "t": _ts(t_late), "i": tid,
                                 "tks": "B"})
                else:
                    late.append({"T": "t", "S": sym, "i": tid, "x": "V", "p": p, "s": int(q),
                                 "c": ["@", "Z"], "z": self._tape[i], "t": _ts(t_late)})
                v2 = v + q
                row = (minute, row[1], row[2], row[3], row[4], v2, row[6] + 1,
                       round((float(self._m_pv[i]) + p * q) / v2, 4))
                late.append(self._bar_msg("u", sym, row, stamp))
                self.stats["updated_bars"] += 1
                self.stats["trades"] += 1
            self._store_live(i, row)
            self._add_to_day(i, row)
            out.extend(late)
            late.clear()
            day = self._day_row(self._day[i])  # type: ignore[arg-type]
            out.append(self._bar_msg("d", self.symbols[i], day, _ts(day[0])))
        self._m_n[:] = 0
        self._m_v[:] = 0
        self._m_pv[:] = 0

    @staticmethod
    def _bar_msg(kind: str, sym: str, row: tuple[int, float, float, float, float, float, int, float],
                 stamp: msgpack.Timestamp) -> Message:
        _, o, h, low, c, v, n, vw = row
        return {"T": kind, "S": sym, "o": o, "h": h, "l": low, "c": c, "v": v, "t": stamp, "n": n, "vw": vw}

    def _store_live(self, i: int, row: tuple[int, float, float, float, float, float, int, float]) -> None:
        ts, rows = self._live_t[i], self._live_rows[i]
        ts.append(row[0])
        rows.append(row)
        if len(ts) > LIVE_MINUTES_KEPT:
            drop = len(ts) - LIVE_MINUTES_KEPT // 2
            del ts[:drop]
            del rows[:drop]

    def _day_from_history(self, symbol: str, i: int) -> list[float] | None:
        lo = self._day_key
        hi = self._live_since[i]
        parts = [b for _, b in self.history.range(symbol, lo, hi)] if hi > lo else []
        bars = Bars.concat(parts)
        if len(bars) == 0:
            return None
        v = float(bars.v.sum())
        return [float(lo), float(bars.o[0]), float(bars.h.max()), float(bars.l.min()), float(bars.c[-1]), v,
                float(bars.n.sum()), float((bars.vw * bars.v).sum())]

    def _add_to_day(self, i: int, row: tuple[int, float, float, float, float, float, int, float]) -> None:
        _, o, h, low, c, v, n, vw = row
        d = self._day[i]
        if d is None:
            self._day[i] = [float(self._day_key), o, h, low, c, v, float(n), vw * v]
            return
        d[2] = max(d[2], h)
        d[3] = min(d[3], low)
        d[4] = c
        d[5] += v
        d[6] += n
        d[7] += vw * v

    @staticmethod
    def _day_row(d: list[float]) -> tuple[int, float, float, float, float, float, int, float]:
        v = d[5]
        return (int(d[0]), d[1], d[2], d[3], d[4], v, int(d[6]), round(d[7] / v, 4) if v else d[4])

    def describe(self) -> dict[str, Any]:
        """Counters and settings for the admin stats endpoint."""
        return {**self.stats, "rate": self._rate, "symbols": len(self.symbols),
                "halted": [s for s, h in zip(self.symbols, self._halted.tolist(), strict=True) if h]}
