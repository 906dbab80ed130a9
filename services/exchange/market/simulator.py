"""The market simulator: seeded quotes, trades and bars for every symbol of the universe.

Each call to :meth:`MarketSimulator.step` produces, in one vectorised numpy batch, the messages of
the interval since the previous step (an asyncio timer calls it every ``tick_interval`` seconds; tests
call it directly with a fake clock). Prices follow a log random walk with stochastic volatility;
quotes sit on the tick grid around the mid with a random spread; trades print at the bid, the ask or
the midpoint. Stocks trade from 04:00 to 20:00 New York time on trading days (more slowly in the
pre-market and after-hours); crypto trades 24/7. The live price walks towards the generated history's
close of each minute (a bridge pinned at the minute's end) and trade sizes add up, on average, to the
history's volume of that minute, so live minutes continue the history in price and volume, and an
exchange restarted at any time resumes where the previous one was.

Minute bars (``b``) are the aggregation of the trades the stream really sent in that minute, with
``n`` (trade count) and ``vw`` (VWAP); now and then a late print arrives just after the minute closed,
followed by an updated bar (``u``) that includes it; now and then a stock trade of the minute is
canceled (``x``) or corrected (``c``), followed by an updated bar without it; a daily bar (``d``,
stocks from New York midnight, crypto from UTC midnight) follows every minute bar.
Each symbol starts at the close of the last completed minute of the generated history, and the
finished live minutes are kept (bounded) so history joins the live stream without a jump.

Each step's messages leave the simulator already encoded as a :class:`Batch`: msgpack maps laid end
to end (Alpaca's stream fields, ``t`` as a msgpack Timestamp ext), with the kind and symbol of each
message alongside, so the data streams filter and frame them with numpy and never build a Python dict
per message. The hot kinds (stock and crypto trades and quotes) are encoded column-wise from the
generated arrays through fixed byte layouts (:class:`_Layout`); the rare ones (bars, statuses, order
books, late prints) go through ``msgpack.packb``. ``Batch.messages()`` decodes a batch back into dicts
(tests, tools). Everything runs on the exchange's event-loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from services.domain.calendar import MarketCalendar
from services.exchange.contracts import Instrument
from services.exchange.market.encoding import ENCODE_CHUNK, Batch, Message, MessageEncoder, Out
from services.exchange.market.history import (
    MINUTE_NS,
    NS,
    HistoryGenerator,
    day_of,
    day_start_ns,
    ny_date,
)
from services.exchange.market.minutes import BarRow, MinuteBars, ts
from services.exchange.market.quotes import LatestValues

log = logging.getLogger(__name__)

DEFAULT_RATE = 300.0  # messages per second, all symbols together
MAX_RATE = 2_000_000.0
_TAPE = {"NASDAQ": "C", "NYSE": "A", "ARCA": "B"}
_BUSY = {"SPY": 3.0, "QQQ": 2.0, "AAPL": 2.0, "NVDA": 2.0, "TSLA": 2.0, "BTC/USD": 1.5}
EXTENDED_ACTIVITY = 0.1  # share of a stock's session message rate in the pre-market and after-hours
CORRECTION_RATE = 0.004  # chance that a stock's finished minute gets a trade correction or cancel
_SIZE_SIGMA = 1.0  # log-normal spread of trade sizes


Listener = Callable[[Batch], None]


class MarketSimulator(MinuteBars, LatestValues):
    """Seeded market for ``universe``; implements :class:`MarketView` and ``LiveMinutes``.

    ``clock`` returns the current UTC time (default: the wall clock). Listeners get each step's
    :class:`Batch` (time-ordered within each interval); ``on_nbbo`` callbacks get each symbol whose NBBO
    changed. Both are called on the thread that calls :meth:`step` (the event loop's).
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
        self.correction_rate = CORRECTION_RATE  # per stock minute; tests raise it to see many
        self._listeners: list[Listener] = []
        self._nbbo_listeners: list[Callable[[str], None]] = []
        # (callback(symbol, price), wants(symbol) or None) per trade listener, and the prints of the
        # step being generated (symbol indexes, prices; per segment, in time order) when anyone listens.
        self._trade_listeners: list[tuple[Callable[[str, Decimal], None], Callable[[str], bool] | None]] = []
        self._prints: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending: list[tuple[Message, int]] = []
        self._task: asyncio.Task[None] | None = None
        self.stats: dict[str, int] = {
            "steps": 0,
            "messages": 0,
            "trades": 0,
            "quotes": 0,
            "bars": 0,
            "updated_bars": 0,
            "corrections": 0,
            "cancels": 0,
            "step_errors": 0,
            # Loop time spent in step() (generation, encoding, NBBO
            # callbacks and the listeners' fan-out), in nanoseconds.
            "step_ns_total": 0,
            "step_ns_max": 0,
        }

        syms = list(universe)
        self.symbols = syms
        self.index = {s: i for i, s in enumerate(syms)}
        insts = [universe[s] for s in syms]
        self._init_symbols(insts)
        self._init_prices(insts)
        self._init_minute_state()

    def _init_symbols(self, insts: list[Instrument]) -> None:
        """Per-symbol constants: asset class, tick, tape, the encoded symbol part of each message."""
        syms = self.symbols
        n = len(syms)
        self._crypto = np.array([i.is_crypto for i in insts], dtype=bool)
        self._tick = np.array([float(i.tick) for i in insts])
        self._dec = [max(0, -int(i.tick.as_tuple().exponent)) for i in insts]
        self._scale = np.power(10.0, np.array(self._dec, dtype=np.float64))
        self._tape = [_TAPE.get(i.exchange, "C") for i in insts]
        self._encoder = MessageEncoder(syms, [i.is_crypto for i in insts], self._tape)
        self._weight = np.array([_BUSY.get(s, 1.0) for s in syms])
        # Per-second volatility of the log price (daily vol spread over the session length).
        self._sigma = np.where(self._crypto, 0.025 / np.sqrt(86_400), 0.014 / np.sqrt(23_400))
        self._logvol = np.zeros(n)
        self._halted = np.zeros(n, dtype=bool)

    def _init_prices(self, insts: list[Instrument]) -> None:
        """Each symbol's price where its generated history ends, its quote and last trade."""
        syms, history = self.symbols, self.history
        n = len(syms)
        now = self.now_ns()
        self._last_ns = now
        self._minute = now - now % MINUTE_NS
        self._mid = np.empty(n)
        self._prev_close = np.empty(n)
        self._live_since: list[int] = [0] * n
        # Each symbol's trading day: the UTC day for crypto, the New York day for stocks.
        self._day_key = np.array(
            [day_start_ns(bool(c), day_of(bool(c), now)) for c in self._crypto], dtype=np.int64
        )
        for i, s in enumerate(syms):
            last = history.last_minute_before(s, now)
            price = last[1] if last else float(insts[i].base_price)
            self._mid[i] = price
            self._live_since[i] = (last[0] + MINUTE_NS) if last else self._minute
            prev = history.last_minute_before(s, int(self._day_key[i]))
            self._prev_close[i] = prev[1] if prev else price
        # The generated history's close and volume of the running minute: the live price walks towards
        # that close (a bridge pinned at each minute's end), and trade sizes add up to that volume, so
        # live minutes continue the history and a restarted exchange resumes at the same prices.
        self._tgt_minute = -1
        self._tgt_close = np.full(n, np.nan)
        self._tgt_vol = np.full(n, np.nan)
        self._sessions: dict[Any, tuple[int, int, int, int] | None] = {}
        self._spread = np.maximum(np.round(self._mid * np.where(self._crypto, 1.5e-4, 1e-4) / self._tick), 1)
        b, a = self._quote_prices(self._mid, self._spread, np.arange(n))
        self._bid, self._ask = b, a
        self._bid_size = np.where(self._crypto, 0.5, 300.0)
        self._ask_size = np.where(self._crypto, 0.5, 300.0)
        self._quote_ns = np.full(n, now, dtype=np.int64)
        self._last_price = self._mid.copy()
        self._last_size = np.where(self._crypto, 0.01, 100.0)
        self._last_trade_ns = np.array([ls - MINUTE_NS // 60 for ls in self._live_since], dtype=np.int64)

    def _init_minute_state(self) -> None:
        """Trade ids, the running minute's bars, the finished live minutes, the running day."""
        syms = self.symbols
        n = len(syms)
        self._trade_id = 1
        # Per symbol: id of its last trade, and one trade of the running minute that is neither its first
        # nor (checked when the minute closes) its last, which a correction or cancel may later name.
        self._last_tid = np.zeros(n, dtype=np.int64)
        self._cand_id = np.full(n, -1, dtype=np.int64)
        self._cand_p = np.zeros(n)
        self._cand_s = np.zeros(n)
        self._cand_t = np.zeros(n, dtype=np.int64)
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
        self._live_rows: list[list[BarRow]] = [[] for _ in range(n)]
        # Running day per symbol: the generated minutes before live start + live.
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

    def on_trade(
        self, callback: Callable[[str, Decimal], None], wants: Callable[[str], bool] | None = None
    ) -> None:
        """``callback(symbol, price)`` for every in-sequence print, in time order, after the step
        that generated it (the venue's ``on_trade``: stops elect on trades). ``wants(symbol)``, when
        given, is asked first so prints nobody needs cost no conversion."""
        self._trade_listeners.append((callback, wants))

    def halt(self, symbol: str, halted: bool) -> None:
        """Halt or resume a symbol; emits a trading status message (``s``) to the stream."""
        i = self.index[symbol]
        if bool(self._halted[i]) == halted:
            return
        self._halted[i] = halted
        now = self.now_ns()
        self._pending.append(
            (
                {
                    "T": "s",
                    "S": symbol,
                    "sc": "H" if halted else "T",
                    "sm": "Trading Halt" if halted else "Trading Resumption",
                    "rc": "T1" if halted else "T2",
                    "rm": "Halt News Pending" if halted else "Halt News Dissemination",
                    "t": ts(now),
                    "z": self._tape[i],
                },
                i,
            )
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

    def step(self, now_ns: int) -> Batch:
        """Generate everything between the previous step and ``now_ns``; deliver it; return it."""
        started = time.perf_counter_ns()
        out = Out()
        for msg, i in self._pending:
            out.add(msg, i)
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
        batch = out.batch()
        self.stats["steps"] += 1
        self.stats["messages"] += len(batch)
        if self._prints:
            prints, self._prints = self._prints, []
            self._deliver_prints(prints)
        for i in changed:
            sym = self.symbols[i]
            for cb in self._nbbo_listeners:
                try:
                    cb(sym)
                except Exception:
                    log.exception("NBBO listener failed for %s", sym)
        if len(batch):
            for listener in list(self._listeners):
                try:
                    listener(batch)
                except Exception:
                    log.exception("market data listener failed")
        spent = time.perf_counter_ns() - started
        self.stats["step_ns_total"] += spent
        self.stats["step_ns_max"] = max(self.stats["step_ns_max"], spent)
        return batch

    def _deliver_prints(self, prints: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Each listener gets the step's prints of the symbols it wants, in time order. ``wants`` is
        asked once per traded symbol, so a storm of prints nobody needs stays in numpy."""
        ti = np.concatenate([p[0] for p in prints])
        tp = np.concatenate([p[1] for p in prints])
        traded = np.unique(ti).tolist()
        for cb, wants in self._trade_listeners:
            keep = traded if wants is None else [i for i in traded if wants(self.symbols[i])]
            if not keep:
                continue
            mask = np.isin(ti, keep)
            for i, p in zip(ti[mask].tolist(), tp[mask].tolist(), strict=True):
                sym = self.symbols[i]
                try:
                    cb(sym, Decimal(f"{p:.{self._dec[i]}f}"))
                except Exception:
                    log.exception("trade listener failed for %s", sym)

    def _session_bounds(self, ns: int) -> tuple[int, int, int, int] | None:
        """(extended open, regular open, regular close, extended close) in ns of the New York day of
        ``ns`` (None when closed), cached per day."""
        day = ny_date(ns)
        if day not in self._sessions:
            s = self.calendar.session(day)
            self._sessions[day] = (
                None
                if s is None
                else (
                    int(s.extended_open.timestamp()) * NS,
                    int(s.open.timestamp()) * NS,
                    int(s.close.timestamp()) * NS,
                    int(s.extended_close.timestamp()) * NS,
                )
            )
            if len(self._sessions) > 64:
                self._sessions.pop(next(iter(self._sessions)))
        return self._sessions[day]

    def _activity(self, ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(which symbols trade at ``ns``, their message weights). Stocks trade from 04:00 to 20:00
        New York time on trading days, more slowly outside the regular session."""
        b = self._session_bounds(ns)
        stock_open = b is not None and b[0] <= ns < b[3]
        regular = b is not None and b[1] <= ns < b[2]
        active = (self._crypto | stock_open) & ~self._halted
        factor = np.where(self._crypto | regular, 1.0, EXTENDED_ACTIVITY)
        return active, self._weight * factor * active

    def _active(self, ns: int) -> np.ndarray:
        return self._activity(ns)[0]

    def _load_targets(self, minute: int) -> None:
        """The generated close and volume of ``minute`` for every symbol (NaN where it has none)."""
        if minute == self._tgt_minute:
            return
        self._tgt_minute = minute
        for i, sym in enumerate(self.symbols):
            got = self.history.minute(sym, minute)
            if got is None:
                self._tgt_close[i] = np.nan
                self._tgt_vol[i] = np.nan
            else:
                self._tgt_close[i], self._tgt_vol[i] = got

    def _generate(self, t0: int, t1: int, out: Out, changed: set[int]) -> None:
        dt = (t1 - t0) / NS
        if dt <= 0:
            return
        rng = self._rng
        active, w = self._activity(t1)
        if not active.any():
            return
        n = len(self.symbols)
        minute = t0 - t0 % MINUTE_NS
        self._load_targets(minute)
        # Stochastic volatility (mean-reverting log vol) and the mid's random walk, bridged to the
        # generated close at the end of the minute where the history has one.
        self._logvol += -0.01 * self._logvol * dt + 0.05 * np.sqrt(dt) * rng.standard_normal(n)
        np.clip(self._logvol, -1.0, 1.5, out=self._logvol)
        old_mid = self._mid.copy()
        remaining = (minute + MINUTE_NS - t0) / NS
        frac = min(dt / remaining, 1.0) if remaining > 0 else 1.0
        has_tgt = ~np.isnan(self._tgt_close)
        pull = np.where(has_tgt, np.log(np.where(has_tgt, self._tgt_close, 1.0) / self._mid) * frac, 0.0)
        noise_dt = np.where(has_tgt, dt * (1.0 - frac), dt)
        move = pull + self._sigma * np.exp(self._logvol) * np.sqrt(noise_dt) * rng.standard_normal(n)
        self._mid = np.where(active, self._mid * np.exp(move), self._mid)
        k = int(rng.poisson(self._rate * min(dt, 1.0)))
        if k == 0:
            return
        wsum = w.sum()
        idx = rng.choice(n, size=k, p=w / wsum)
        offs = np.sort(rng.integers(0, max(t1 - t0, 1), k))
        ts = t0 + offs
        frac_k = offs / max(t1 - t0, 1)
        emid = old_mid[idx] + (self._mid[idx] - old_mid[idx]) * frac_k
        crypto = self._crypto[idx]
        p_trade = np.where(self._crypto, 0.3, 0.4)
        is_trade = rng.random(k) < p_trade[idx]
        spread = self._spread[idx] + rng.integers(0, 2, k)
        bid, ask = self._quote_prices(emid, spread, idx)
        tick = self._tick[idx]
        side = rng.random(k)
        mid_px = np.round(np.round(((bid + ask) / 2) / tick) * tick * self._scale[idx]) / self._scale[idx]
        price = np.where(side < 0.45, ask, np.where(side < 0.9, bid, mid_px))
        # Trade sizes: on average, a minute's trades add up to the generated history's volume for that
        # minute, whatever the message rate (trades expected per minute = rate x share x trade odds).
        per_minute = self._rate * 60.0 * (w / wsum) * p_trade
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_size = np.where(has_tgt & (per_minute > 0), self._tgt_vol / per_minute, np.nan)
        ms = mean_size[idx]
        fallback = np.where(crypto, np.exp(-4.0 + 1.3**2 / 2), np.exp(3.5 + 1.2**2 / 2))
        ms = np.where(np.isnan(ms) | (ms <= 0), fallback, ms)
        raw = rng.lognormal(np.log(ms) - _SIZE_SIGMA**2 / 2, _SIZE_SIGMA)
        tsize = np.where(crypto, np.maximum(np.round(raw, 6), 1e-6), np.maximum(np.round(raw), 1))
        bsz = np.where(crypto, np.round(rng.uniform(0.01, 3.0, k), 4), rng.integers(1, 12, k) * 100.0)
        asz = np.where(crypto, np.round(rng.uniform(0.01, 3.0, k), 4), rng.integers(1, 12, k) * 100.0)
        tid0 = self._trade_id
        trade_ids = tid0 + np.cumsum(is_trade)

        tr = self._apply_trades(idx, is_trade, price, tsize, trade_ids, ts)
        qu = self._apply_quotes(idx, is_trade, bid, ask, bsz, asz, ts, changed)

        self._trade_id += len(tr)
        self.stats["trades"] += len(tr)
        self.stats["quotes"] += len(qu)
        for a in range(0, k, ENCODE_CHUNK):
            sl = slice(a, a + ENCODE_CHUNK)
            out.add_batch(self._encoder.encode(
                idx[sl], ts[sl], is_trade[sl], crypto[sl], price[sl], tsize[sl], bid[sl], bsz[sl], ask[sl],
                asz[sl], trade_ids[sl],
            ))  # fmt: skip
        # Crypto order book snapshots for crypto symbols whose quote changed in this step.
        for i in sorted(changed):
            if self._crypto[i]:
                out.add(self._orderbook(i, int(self._quote_ns[i])), i)

    def _apply_trades(
        self,
        idx: np.ndarray,
        is_trade: np.ndarray,
        price: np.ndarray,
        tsize: np.ndarray,
        trade_ids: np.ndarray,
        ts: np.ndarray,
    ) -> np.ndarray:
        """The step's trades into the running minute bars and last trades; returns their indexes."""
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
            # A correction candidate: this step's first trade of a symbol whose minute already had one.
            old = uniq[~fresh]
            if len(old):
                pick = tr[first[~fresh]]
                self._cand_id[old] = trade_ids[pick]
                self._cand_p[old] = price[pick]
                self._cand_s[old] = tsize[pick]
                self._cand_t[old] = ts[pick]
            np.add.at(self._m_n, ti, 1)
            self._last_tid[uniq] = trade_ids[tr][last]
            self._last_price[uniq] = tp[last]
            self._last_size[uniq] = tq[last]
            self._last_trade_ns[uniq] = ts[tr][last]
            if self._trade_listeners:
                self._prints.append((ti, tp))
        return tr

    def _apply_quotes(
        self,
        idx: np.ndarray,
        is_trade: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        bsz: np.ndarray,
        asz: np.ndarray,
        ts: np.ndarray,
        changed: set[int],
    ) -> np.ndarray:
        """Each symbol's last quote of the step becomes its NBBO; returns the quotes' indexes."""
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
        return qu

    def describe(self) -> dict[str, Any]:
        """Counters and settings for the admin stats endpoint."""
        return {
            **self.stats,
            "rate": self._rate,
            "symbols": len(self.symbols),
            "clock_ns": self.now_ns(),
            "halted": [s for s, h in zip(self.symbols, self._halted.tolist(), strict=True) if h],
        }
