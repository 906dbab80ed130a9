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

from services.domain.calendar import MarketCalendar
from services.exchange.contracts import NBBO, Instrument
from services.exchange.market.history import (
    MINUTE_NS,
    NS,
    Bars,
    HistoryGenerator,
    day_of,
    day_start_ns,
    ny_date,
)

log = logging.getLogger(__name__)

Message = dict[str, Any]

DEFAULT_RATE = 300.0  # messages per second, all symbols together
MAX_RATE = 2_000_000.0
LIVE_MINUTES_KEPT = 10_000  # per symbol; older live minutes are forgotten
_TAPE = {"NASDAQ": "C", "NYSE": "A", "ARCA": "B"}
_BUSY = {"SPY": 3.0, "QQQ": 2.0, "AAPL": 2.0, "NVDA": 2.0, "TSLA": 2.0, "BTC/USD": 1.5}
EXTENDED_ACTIVITY = 0.1  # share of a stock's session message rate in the pre-market and after-hours
CORRECTION_RATE = 0.004  # chance that a stock's finished minute gets a trade correction or cancel
_SIZE_SIGMA = 1.0  # log-normal spread of trade sizes


def _ts(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


# ----------------------------------------------------------------------------------------------
# wire encoding

_ENCODE_CHUNK = 65_536  # messages encoded per numpy pass (bounds the scratch arrays after a stall)
# Value encodings of the fixed-width fields: msgpack marker bytes, numpy dtype, value width.
_FIELD_FORMATS: dict[str, tuple[bytes, str, int]] = {
    "f8": (b"\xcb", ">f8", 8),  # float 64
    "u4": (b"\xce", ">u4", 4),  # uint 32
    "u8": (b"\xcf", ">u8", 8),  # uint 64
    "ts": (b"\xd7\xff", ">u8", 8),  # Timestamp ext, 64-bit form: nanoseconds << 34 | seconds
    "c1": (b"\xa1", "u1", 1),  # a one-character string
}


def array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def timestamp64(ns: np.ndarray) -> np.ndarray:
    """msgpack's 64-bit Timestamp payload (``nsec << 34 | sec``) for int64 nanoseconds since the epoch.

    The 64-bit form holds 0 <= seconds < 2**34 (1970 to 2514), which is every simulated time."""
    ns = np.asarray(ns, dtype=np.int64)
    sec = ns // NS
    nsec = (ns - sec * NS).astype(np.uint64)
    return (nsec << np.uint64(34)) | sec.astype(np.uint64)


class _Layout:
    """The byte layout of one hot message kind: a fixed-width head, then the symbol's part.

    The head is the map header, ``T`` and the constant fields, then the numeric fields at fixed
    offsets (always the same msgpack width, e.g. float 64 for prices), so a column of values is
    written into a column of rows in one numpy assignment. The symbol's part (``S``, and ``z`` for
    stocks) comes last because it is the only variable-width piece; map key order is free in msgpack.
    """

    def __init__(
        self, kind: str, consts: Mapping[str, Any], fields: Mapping[str, str], symbol_keys: int
    ) -> None:
        keys = 1 + len(consts) + len(fields) + symbol_keys
        if keys >= 16:
            raise ValueError("a layout must be a fixmap (fewer than 16 keys)")
        head = bytearray((0x80 | keys,))
        head += msgpack.packb("T") + msgpack.packb(kind)
        for k, v in consts.items():
            head += msgpack.packb(k) + msgpack.packb(v)
        names: list[str] = []
        formats: list[str] = []
        offsets: list[int] = []
        for k, fmt in fields.items():
            marker, dtype, width = _FIELD_FORMATS[fmt]
            head += msgpack.packb(k) + marker
            names.append(k)
            formats.append(dtype)
            offsets.append(len(head))
            head += bytes(width)
        self.kind = ord(kind)
        self.width = len(head)
        self.template = bytes(head)
        # The numeric fields as a packed record type over the head's bytes.
        self.record = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": self.width}
        )

    def heads(self, count: int, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """``count`` heads as a (count, width) uint8 array; ``values[field]`` holds one value per head."""
        block = np.frombuffer(bytearray(self.template * count), dtype=self.record)
        for name in self.record.names or ():
            block[name] = values[name]
        return block.view(np.uint8).reshape(count, self.width)


_STOCK_TRADE = _Layout("t", {"x": "V", "c": ["@"]}, {"i": "u8", "p": "f8", "s": "u4", "t": "ts"}, 2)
_STOCK_QUOTE = _Layout(
    "q", {"bx": "V", "ax": "V", "c": ["R"]}, {"bp": "f8", "bs": "u4", "ap": "f8", "as": "u4", "t": "ts"}, 2
)
_CRYPTO_TRADE = _Layout("t", {}, {"p": "f8", "s": "f8", "t": "ts", "i": "u8", "tks": "c1"}, 1)
_CRYPTO_QUOTE = _Layout("q", {}, {"bp": "f8", "bs": "f8", "ap": "f8", "as": "f8", "t": "ts"}, 1)
_LAYOUTS = (_STOCK_TRADE, _STOCK_QUOTE, _CRYPTO_TRADE, _CRYPTO_QUOTE)
_HEAD_WIDTH = max(lay.width for lay in _LAYOUTS)


class Batch:
    """One step's messages, encoded: msgpack maps end to end in ``data`` (uint8), message ``j`` being
    ``data[offsets[j]:offsets[j + 1]]``, with its kind (``T`` as an ASCII code) in ``kinds`` and its
    symbol's index in ``syms``. Immutable by convention; shared by every stream client."""

    __slots__ = ("data", "kinds", "offsets", "syms")

    def __init__(self, data: np.ndarray, offsets: np.ndarray, kinds: np.ndarray, syms: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets
        self.kinds = kinds
        self.syms = syms

    @classmethod
    def empty(cls) -> Batch:
        return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.kinds)

    def count(self, kind: str) -> int:
        return int(np.count_nonzero(self.kinds == ord(kind)))

    def frames(self, select: np.ndarray | None = None, max_messages: int = 1000) -> list[tuple[bytes, int]]:
        """The selected messages (a bool mask; None = all) as msgpack array frames of at most
        ``max_messages`` each, in order: ``[(frame, messages in it), ...]``."""
        data, offsets = self.data, self.offsets
        if select is not None and not select.all():
            lengths = np.diff(offsets)
            data = data[np.repeat(select, lengths)]
            offsets = np.zeros(int(np.count_nonzero(select)) + 1, np.int64)
            np.cumsum(lengths[select], out=offsets[1:])
        n = len(offsets) - 1
        step = max(1, int(max_messages))
        out: list[tuple[bytes, int]] = []
        for a in range(0, n, step):
            b = min(n, a + step)
            out.append((array_header(b - a) + data[offsets[a] : offsets[b]].tobytes(), b - a))
        return out

    def messages(self) -> list[Message]:
        """Decode the batch into Alpaca stream dicts (``t`` as msgpack.Timestamp)."""
        if not len(self):
            return []
        decoded: list[Message] = msgpack.unpackb(array_header(len(self)) + self.data.tobytes())
        return decoded

    @staticmethod
    def concat(parts: list[Batch]) -> Batch:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Batch.empty()
        if len(parts) == 1:
            return parts[0]
        lengths = np.concatenate([np.diff(p.offsets) for p in parts])
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Batch(np.concatenate([p.data for p in parts]), offsets,
                     np.concatenate([p.kinds for p in parts]), np.concatenate([p.syms for p in parts]))


class _Out:
    """Collects a step's messages in order: encoded numpy chunks and single dicts (packed here)."""

    def __init__(self) -> None:
        self.parts: list[Batch] = []
        self._single: list[bytes] = []
        self._single_kinds: list[int] = []
        self._single_syms: list[int] = []

    def add(self, msg: Message, sym: int) -> None:
        self._single.append(msgpack.packb(msg))
        self._single_kinds.append(ord(msg["T"]))
        self._single_syms.append(sym)

    def add_batch(self, batch: Batch) -> None:
        self._flush_single()
        self.parts.append(batch)

    def _flush_single(self) -> None:
        if not self._single:
            return
        lengths = np.fromiter((len(b) for b in self._single), np.int64, len(self._single))
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        kinds = np.array(self._single_kinds, np.uint8)
        syms = np.array(self._single_syms, np.int32)
        self.parts.append(Batch(np.frombuffer(b"".join(self._single), np.uint8), offsets, kinds, syms))
        self._single, self._single_kinds, self._single_syms = [], [], []

    def batch(self) -> Batch:
        self._flush_single()
        return Batch.concat(self.parts)


Listener = Callable[[Batch], None]


class MarketSimulator:
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
        self.stats: dict[str, int] = {"steps": 0, "messages": 0, "trades": 0, "quotes": 0, "bars": 0,
                                      "updated_bars": 0, "corrections": 0, "cancels": 0,
                                      "step_errors": 0,
                                      # Loop time spent in step() (generation, encoding, NBBO
                                      # callbacks and the listeners' fan-out), in nanoseconds.
                                      "step_ns_total": 0, "step_ns_max": 0}

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
        # The encoded symbol part of the hot messages: "S" (and the tape "z" for stocks).
        sym_parts = [
            msgpack.packb("S") + msgpack.packb(s)
            + (b"" if insts[i].is_crypto else msgpack.packb("z") + msgpack.packb(self._tape[i]))
            for i, s in enumerate(syms)
        ]
        self._sym_len = np.array([len(b) for b in sym_parts], dtype=np.int64)
        self._sym_part = np.zeros((n, max(self._sym_len, default=1)), dtype=np.uint8)
        for i, b in enumerate(sym_parts):
            self._sym_part[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        # Per (layout, symbol): which bytes of a scratch row [head | padding | symbol part] are the
        # message, and its length; a step's rows are then compressed with one boolean gather.
        row_w = _HEAD_WIDTH + self._sym_part.shape[1]
        self._row_keep = np.zeros((len(_LAYOUTS), n, row_w), dtype=bool)
        self._msg_len = np.zeros((len(_LAYOUTS), n), dtype=np.int64)
        for code, lay in enumerate(_LAYOUTS):
            self._row_keep[code, :, : lay.width] = True
            self._msg_len[code] = lay.width + self._sym_len
            for i, ln in enumerate(self._sym_len.tolist()):
                self._row_keep[code, i, _HEAD_WIDTH : _HEAD_WIDTH + ln] = True
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
        # Each symbol's trading day: the UTC day for crypto, the New York day for stocks.
        self._day_key = np.array([day_start_ns(bool(c), day_of(bool(c), now)) for c in self._crypto],
                                 dtype=np.int64)
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
        self._live_rows: list[list[tuple[int, float, float, float, float, float, int, float]]] = [
            [] for _ in range(n)
        ]
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
        self._pending.append((
            {"T": "s", "S": symbol, "sc": "H" if halted else "T",
             "sm": "Trading Halt" if halted else "Trading Resumption",
             "rc": "T1" if halted else "T2",
             "rm": "Halt News Pending" if halted else "Halt News Dissemination",
             "t": _ts(now), "z": self._tape[i]},
            i,
        ))

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
                return (int(self._day_key[i]), o, h, low, c, v, n, round(pv / v, 4) if v else c)
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

    def step(self, now_ns: int) -> Batch:
        """Generate everything between the previous step and ``now_ns``; deliver it; return it."""
        started = time.perf_counter_ns()
        out = _Out()
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
            self._sessions[day] = None if s is None else (
                int(s.extended_open.timestamp()) * NS, int(s.open.timestamp()) * NS,
                int(s.close.timestamp()) * NS, int(s.extended_close.timestamp()) * NS)
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

    def _generate(self, t0: int, t1: int, out: _Out, changed: set[int]) -> None:
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

        self._trade_id += len(tr)
        self.stats["trades"] += len(tr)
        self.stats["quotes"] += len(qu)
        for a in range(0, k, _ENCODE_CHUNK):
            sl = slice(a, a + _ENCODE_CHUNK)
            out.add_batch(self._encode(idx[sl], ts[sl], is_trade[sl], crypto[sl], price[sl], tsize[sl],
                                       bid[sl], bsz[sl], ask[sl], asz[sl], trade_ids[sl]))
        # Crypto order book snapshots for crypto symbols whose quote changed in this step.
        for i in sorted(changed):
            if self._crypto[i]:
                out.add(self._orderbook(i, int(self._quote_ns[i])), i)

    def _encode(
        self, idx: np.ndarray, ts: np.ndarray, is_trade: np.ndarray, crypto: np.ndarray, price: np.ndarray,
        tsize: np.ndarray, bid: np.ndarray, bsz: np.ndarray, ask: np.ndarray, asz: np.ndarray,
        trade_ids: np.ndarray,
    ) -> Batch:
        """Encode generated trades and quotes column-wise (no per-message Python work)."""
        k = len(idx)
        kind = np.where(is_trade, 0, 1) + np.where(crypto, 2, 0)  # index into _LAYOUTS
        sym_w = self._sym_part.shape[1]
        rows = np.empty((k, _HEAD_WIDTH + sym_w), dtype=np.uint8)
        stamp = timestamp64(ts)
        for code, lay in enumerate(_LAYOUTS):
            r = np.flatnonzero(kind == code)
            if not len(r):
                continue
            if lay is _STOCK_TRADE:
                vals = {"i": trade_ids[r], "p": price[r], "s": np.clip(tsize[r], 0, 2**32 - 1), "t": stamp[r]}
            elif lay is _CRYPTO_TRADE:
                vals = {"p": price[r], "s": tsize[r], "t": stamp[r], "i": trade_ids[r],
                        "tks": np.where(price[r] >= ask[r], ord("B"), ord("S"))}
            elif lay is _STOCK_QUOTE:
                vals = {"bp": bid[r], "bs": np.clip(bsz[r], 0, 2**32 - 1), "ap": ask[r],
                        "as": np.clip(asz[r], 0, 2**32 - 1), "t": stamp[r]}
            else:
                vals = {"bp": bid[r], "bs": bsz[r], "ap": ask[r], "as": asz[r], "t": stamp[r]}
            rows[r, : lay.width] = lay.heads(len(r), vals)
        rows[:, _HEAD_WIDTH:] = self._sym_part[idx]
        keep = self._row_keep[kind, idx]
        offsets = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(self._msg_len[kind, idx], out=offsets[1:])
        kinds = np.where(is_trade, ord("t"), ord("q")).astype(np.uint8)
        return Batch(rows[keep], offsets, kinds, idx.astype(np.int32))

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

    def _close_minute(self, out: _Out) -> None:
        minute = self._minute
        done = np.flatnonzero(self._m_n > 0)
        if len(done) == 0:
            self._cand_id[:] = -1
            return
        keys = np.where(self._crypto, day_start_ns(True, day_of(True, minute)),
                        day_start_ns(False, day_of(False, minute)))
        for i in np.flatnonzero(keys != self._day_key).tolist():
            self._day_key[i] = keys[i]
            if self._day[i] is not None:
                self._prev_close[i] = self._day[i][4]  # type: ignore[index]
            self._day[i] = None
        stamp = _ts(minute)
        late: list[Message] = []  # messages of symbol i
        rng = self._rng
        fix_draw = rng.random(len(done))
        for j, i in enumerate(done.tolist()):
            v = float(self._m_v[i])
            row = (minute, float(self._m_o[i]), float(self._m_h[i]), float(self._m_l[i]), float(self._m_c[i]),
                   v, int(self._m_n[i]), round(float(self._m_pv[i]) / v, 4) if v else float(self._m_c[i]))
            out.add(self._bar_msg("b", self.symbols[i], row, stamp), i)
            self.stats["bars"] += 1
            # Now and then a late print for the minute that just closed, and the updated bar.
            if rng.random() < 0.02:
                p = float(self._m_c[i])
                q = float(self._last_size[i])
                tid = self._trade_id = self._trade_id + 1
                t_late = minute + MINUTE_NS - 1_000_000 * int(rng.integers(1, 900))
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
            elif fix_draw[j] < self.correction_rate and not self._crypto[i]:
                row = self._correct_or_cancel(i, row, late, stamp)
            self._store_live(i, row)
            self._add_to_day(i, row)
            for m in late:
                out.add(m, i)
            late.clear()
            day = self._day_row(self._day[i])  # type: ignore[arg-type]
            out.add(self._bar_msg("d", self.symbols[i], day, _ts(day[0])), i)
        self._m_n[:] = 0
        self._m_v[:] = 0
        self._m_pv[:] = 0
        self._cand_id[:] = -1

    def _correct_or_cancel(self, i: int, row: tuple[int, float, float, float, float, float, int, float],
                           late: list[Message], stamp: msgpack.Timestamp,
                           ) -> tuple[int, float, float, float, float, float, int, float]:
        """Now and then a trade of the minute that just closed is canceled (``T: "x"``) or corrected
        (``T: "c"``), as on Alpaca's stock stream, followed by the updated bar (``u``) without it; the
        corrected bar is what the exchange serves from then on. Only a trade that is neither the first
        nor the last of its minute, priced strictly inside the minute's range, is chosen, so the bar's
        open, high, low and close stand and only volume, trade count and VWAP change."""
        minute, o, h, low, c, v, n, _ = row
        oid, op, os_, ot = (int(self._cand_id[i]), float(self._cand_p[i]), float(self._cand_s[i]),
                            int(self._cand_t[i]))
        if oid < 0 or oid == int(self._last_tid[i]) or not (low < op < h) or n < 3:
            return row
        sym, tape, rng = self.symbols[i], self._tape[i], self._rng
        pv = float(self._m_pv[i]) - op * os_
        if rng.random() < 0.5:
            late.append({"T": "x", "S": sym, "i": oid, "x": "V", "p": op, "s": int(os_), "a": "C",
                         "z": tape, "t": _ts(ot)})
            v2, n2 = v - os_, n - 1
            self.stats["cancels"] += 1
        else:
            tick, d = float(self._tick[i]), self._dec[i]
            cp = round(op + tick * float(rng.integers(-1, 2)), d)
            cs = float(max(1, round(os_ * float(rng.uniform(0.5, 1.5)))))
            if cs == os_:
                cs += 1
            self._trade_id += 1
            late.append({"T": "c", "S": sym, "x": "V", "oi": oid, "op": op, "os": int(os_), "oc": ["@"],
                         "ci": self._trade_id, "cp": cp, "cs": int(cs), "cc": ["@"], "z": tape, "t": _ts(ot)})
            v2, n2 = v - os_ + cs, n
            pv += cp * cs
            self.stats["corrections"] += 1
        fixed = (minute, o, h, low, c, v2, n2, round(pv / v2, 4) if v2 else c)
        late.append(self._bar_msg("u", sym, fixed, stamp))
        self.stats["updated_bars"] += 1
        return fixed

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
        lo = int(self._day_key[i])
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
            self._day[i] = [float(self._day_key[i]), o, h, low, c, v, float(n), vw * v]
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
        return {**self.stats, "rate": self._rate, "symbols": len(self.symbols), "clock_ns": self.now_ns(),
                "halted": [s for s, h in zip(self.symbols, self._halted.tolist(), strict=True) if h]}
