"""Numpy column store for OHLCV bars: the data the chart items draw from (no Qt here).

History lives in preallocated columns that double in capacity, so appending is amortised O(1).
The newest, still-forming bar (the *live* bar) is kept apart from history: a tick replaces it
without touching the history columns, the bounds caches or the per-pixel aggregation caches.

Per-block minima/maxima (``BLOCK`` bars each) make "lowest low / highest high / largest volume over
bars [i0, i1)" cost O(BLOCK + N / BLOCK) instead of O(N), which keeps y auto-ranging cheap even
when a million bars are in view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

BLOCK: Final = 512
COLUMNS: Final = ("t", "o", "h", "l", "c", "v")


def to_epoch_ns(t: int | np.integer | datetime) -> int:
    """A bar or fill time in the store's unit: int epoch ns pass through; a datetime must be
    timezone-aware."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"timestamp must be timezone-aware, got naive {t!r}")
        delta = t - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(t, bool) or not isinstance(t, int | np.integer):
        raise ValueError(f"timestamp must be int epoch nanoseconds or an aware datetime, got {t!r}")
    return int(t)


@dataclass(frozen=True, slots=True)
class LiveBar:
    """The bar still being formed (its values change with every tick)."""

    t: int
    o: float
    h: float
    l: float  # noqa: E741 - OHLC spelling
    c: float
    v: float


@dataclass(slots=True)
class _BucketSpan:
    """Complete ``k``-bar buckets covering history [start, end) (both multiples of ``k``)."""

    k: int
    epoch: int
    start: int
    end: int
    x: F64
    o: F64
    h: F64
    l: F64  # noqa: E741
    c: F64
    v: F64


@dataclass(frozen=True, slots=True)
class Buckets:
    """History bars merged ``k`` per bucket (``k == 1`` means unmerged).

    ``x`` is the bucket's centre in bar-index units; ``width`` the bucket width in the same units.
    """

    k: int
    x: F64
    o: F64
    h: F64
    l: F64  # noqa: E741
    c: F64
    v: F64

    @property
    def width(self) -> float:
        return float(self.k)


class BarStore:
    """OHLCV history in numpy columns plus a separate live bar.

    Index ``i`` addresses bar ``i`` counted from the oldest; the live bar, if any, has index
    ``n_history``. Timestamps are int64 nanoseconds since the epoch, UTC.
    ``version`` increases whenever *history* changes (not when only the live bar changes), so
    drawing caches keyed by it survive ticks.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._cap = max(16, int(capacity))
        self._n = 0
        self._t: I64 = np.empty(self._cap, dtype=np.int64)
        self._o: F64 = np.empty(self._cap)
        self._h: F64 = np.empty(self._cap)
        self._l: F64 = np.empty(self._cap)
        self._c: F64 = np.empty(self._cap)
        self._v: F64 = np.empty(self._cap)
        self._blk_hi: F64 = np.empty(0)
        self._blk_lo: F64 = np.empty(0)
        self._blk_v: F64 = np.empty(0)
        self._lo = np.inf
        self._hi = -np.inf
        self._vmax = 0.0
        self._live: LiveBar | None = None
        self.version = 0
        # bumps when history is rewritten (load/clear) rather than appended to
        self._epoch = 0
        # merge factor -> complete buckets over a span of history, extended on append
        self._bk: dict[int, _BucketSpan] = {}

    # ---------------------------------------------------------------- reading

    @property
    def n_history(self) -> int:
        return self._n

    @property
    def live(self) -> LiveBar | None:
        return self._live

    def __len__(self) -> int:
        return self._n + (1 if self._live is not None else 0)

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def t(self) -> I64:
        """History timestamps (a view; do not modify)."""
        return self._t[: self._n]

    @property
    def o(self) -> F64:
        return self._o[: self._n]

    @property
    def h(self) -> F64:
        return self._h[: self._n]

    @property
    def l(self) -> F64:  # noqa: E743
        return self._l[: self._n]

    @property
    def c(self) -> F64:
        return self._c[: self._n]

    @property
    def v(self) -> F64:
        return self._v[: self._n]

    def column(self, name: str, include_live: bool = True) -> npt.NDArray[np.float64] | I64:
        """A copy of one column, with the live bar appended when ``include_live``."""
        if name not in COLUMNS:
            raise KeyError(f"unknown column {name!r}; expected one of {COLUMNS}")
        hist = getattr(self, name)
        if include_live and self._live is not None:
            return np.append(hist, getattr(self._live, name))
        return hist.copy()

    def bar(self, i: int) -> LiveBar:
        """Bar ``i`` (history or live) as a value object; negative indexes count from the end."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"bar index {i} out of range 0..{n - 1}")
        if i == self._n and self._live is not None:
            return self._live
        return LiveBar(
            int(self._t[i]),
            float(self._o[i]),
            float(self._h[i]),
            float(self._l[i]),
            float(self._c[i]),
            float(self._v[i]),
        )

    def price_bounds(self) -> tuple[float, float] | None:
        """(lowest low, highest high) over everything, or None when empty. O(1)."""
        lo, hi = self._lo, self._hi
        if self._live is not None:
            lo, hi = min(lo, self._live.l), max(hi, self._live.h)
        if lo > hi:
            return None
        return float(lo), float(hi)

    def history_bounds(self) -> tuple[float, float] | None:
        if self._n == 0:
            return None
        return float(self._lo), float(self._hi)

    def max_volume(self) -> float:
        vmax = self._vmax
        if self._live is not None:
            vmax = max(vmax, self._live.v)
        return float(vmax)

    def range_stats(self, i0: int, i1: int) -> tuple[float, float, float] | None:
        """(lowest low, highest high, largest volume) over bars [i0, i1), live bar included.

        None when the range holds no bars. O(BLOCK + (i1 - i0) / BLOCK).
        """
        n_all = len(self)
        i0, i1 = max(0, int(i0)), min(n_all, int(i1))
        if i0 >= i1:
            return None
        lo, hi, vmax = np.inf, -np.inf, 0.0
        live = self._live
        if live is not None and i1 > self._n:
            lo, hi, vmax = live.l, live.h, live.v
            i1 = self._n
        if i0 < i1:
            b0, b1 = -(-i0 // BLOCK), i1 // BLOCK  # whole blocks [b0, b1)
            if b0 < b1:
                lo = min(lo, float(self._blk_lo[b0:b1].min()))
                hi = max(hi, float(self._blk_hi[b0:b1].max()))
                vmax = max(vmax, float(self._blk_v[b0:b1].max()))
                parts = ((i0, b0 * BLOCK), (b1 * BLOCK, i1))
            else:
                parts = ((i0, i1), (0, 0))
            for a, b in parts:
                if a < b:
                    lo = min(lo, float(self._l[a:b].min()))
                    hi = max(hi, float(self._h[a:b].max()))
                    vmax = max(vmax, float(self._v[a:b].max()))
        return float(lo), float(hi), float(vmax)

    def index_at_time(self, t_ns: int | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Index of the bar whose interval contains ``t_ns`` (the last bar starting at or before it).

        -1 for times before the first bar.
        """
        t = np.asarray(t_ns, dtype=np.int64)
        idx = np.searchsorted(self.t, t, side="right").astype(np.int64) - 1  # a view: no 8 MB copy
        if self._live is not None:  # the live bar is the newest: it holds every later time
            idx = np.where(t >= self._live.t, self._n, idx)
        return idx

    def time_at(self, i: int) -> int | None:
        n = len(self)
        if not 0 <= i < n:
            return None
        if i == self._n and self._live is not None:
            return self._live.t
        return int(self._t[i])

    def times(self, i0: int, i1: int, step: int = 1) -> I64:
        """Timestamps of bars [i0, i1) taking every ``step``-th, live bar included."""
        n = len(self)
        i0, i1 = max(0, i0), min(n, i1)
        if i0 >= i1:
            return np.empty(0, dtype=np.int64)
        if self._live is None or i1 <= self._n:
            return self._t[i0:i1:step].copy()
        hist = self._t[i0 : self._n : step]
        idx_live = self._n
        if (idx_live - i0) % step == 0:
            return np.append(hist, self._live.t)
        return hist.copy()

    def buckets(self, i0: int, i1: int, k: int) -> Buckets:
        """History bars [i0, i1) merged ``k`` per bucket.

        Buckets are aligned to absolute multiples of ``k`` so panning never reshuffles which bars
        share a bucket. Each bucket has the first open, highest high, lowest low, last close and
        summed volume of its bars. The live bar is never included.
        """
        k = max(1, int(k))
        n = self._n
        i0 = max(0, (max(0, int(i0)) // k) * k)
        i1 = min(n, int(i1))
        if i0 >= i1:
            e = np.empty(0)
            return Buckets(k, e, e, e, e, e, e)
        if k == 1:
            idx = np.arange(i0, i1, dtype=np.float64)
            return Buckets(
                1, idx, self._o[i0:i1], self._h[i0:i1], self._l[i0:i1], self._c[i0:i1], self._v[i0:i1]
            )
        # Complete buckets come from a per-k cache that appends extend (a new bar only touches
        # the last bucket), so a full view of 1M bars does not re-merge every bar per frame.
        whole = i0 + ((i1 - i0) // k) * k
        parts: list[tuple[F64, F64, F64, F64, F64, F64]] = []
        if whole > i0:
            span = self._bk.get(k)
            if span is None or span.epoch != self._epoch or span.start > i0 or span.end < i0:
                span = _BucketSpan(k, self._epoch, i0, i0, *self._merge(i0, i0, k))
                self._bk[k] = span
                if len(self._bk) > 8:  # zoom levels seen recently; drop the oldest
                    del self._bk[next(iter(self._bk))]
            if span.end < whole:
                more = self._merge(span.end, whole, k)
                span.x, span.o, span.h, span.l, span.c, span.v = (
                    np.concatenate((old, new))
                    for old, new in zip((span.x, span.o, span.h, span.l, span.c, span.v), more, strict=True)
                )
                span.end = whole
            a, b = (i0 - span.start) // k, (whole - span.start) // k
            parts.append((span.x[a:b], span.o[a:b], span.h[a:b], span.l[a:b], span.c[a:b], span.v[a:b]))
        if whole < i1:
            parts.append(self._merge(whole, i1, k))
        if len(parts) == 1:
            x, o, h, lo, c, v = parts[0]
        else:
            x, o, h, lo, c, v = (np.concatenate(cols) for cols in zip(*parts, strict=True))
        return Buckets(k, x, o, h, lo, c, v)

    def _merge(self, i0: int, i1: int, k: int) -> tuple[F64, F64, F64, F64, F64, F64]:
        """Bars [i0, i1) merged ``k`` per bucket (the last bucket may be partial)."""
        if i0 >= i1:
            e = np.empty(0)
            return e, e, e, e, e, e
        starts = np.arange(i0, i1, k)
        rel = starts - i0
        ends = np.minimum(starts + k, i1)
        h = np.maximum.reduceat(self._h[i0:i1], rel)
        lo = np.minimum.reduceat(self._l[i0:i1], rel)
        v = np.add.reduceat(self._v[i0:i1], rel)
        o = self._o[starts]
        c = self._c[ends - 1]
        x = ((starts + ends - 1) * 0.5).astype(np.float64)
        return x, o, h, lo, c, v

    # ---------------------------------------------------------------- writing

    def clear(self) -> None:
        self._n = 0
        self._live = None
        self._lo, self._hi, self._vmax = np.inf, -np.inf, 0.0
        self._blk_hi = self._blk_lo = self._blk_v = np.empty(0)
        self.version += 1
        self._epoch += 1
        self._bk.clear()

    def load(self, arrays: Mapping[str, npt.ArrayLike]) -> None:
        """Replace everything with ``arrays`` (keys t, o, h, l, c, v; equal lengths).

        The newest row becomes the live bar, so a following ``update_last`` with the same
        timestamp replaces it and a newer timestamp promotes it to history.
        Raises ValueError (and keeps the previous contents) when the input is malformed.
        """
        cols = validate_bars(arrays)
        n = cols["t"].shape[0]
        cap = max(16, 1 << max(0, n - 1).bit_length())
        self._cap = cap
        for name in COLUMNS:
            src = cols[name]
            dst = np.empty(cap, dtype=src.dtype)
            dst[: max(0, n - 1)] = src[: max(0, n - 1)]
            setattr(self, "_" + name, dst)
        self._n = max(0, n - 1)
        self._rebuild_stats()
        self._live = None
        if n:
            self._live = LiveBar(
                int(cols["t"][-1]),
                float(cols["o"][-1]),
                float(cols["h"][-1]),
                float(cols["l"][-1]),
                float(cols["c"][-1]),
                float(cols["v"][-1]),
            )
        self.version += 1
        self._epoch += 1
        self._bk.clear()

    def update_last(self, t: int, o: float, h: float, low: float, c: float, v: float) -> bool:
        """Set the live bar. Same timestamp: replace it. Newer timestamp: the previous live bar
        becomes history and this one is live. Returns True when a new bar started.

        Raises ValueError for an older timestamp or inconsistent values (nothing changes then).
        """
        bar = _check_bar(int(t), float(o), float(h), float(low), float(c), float(v))
        live = self._live
        if live is not None:
            if bar.t < live.t:
                raise ValueError(f"bar time {bar.t} is older than the live bar {live.t}")
            if bar.t == live.t:
                self._live = bar
                return False
            self._push_history(
                np.array([live.t], dtype=np.int64),
                np.array([live.o]),
                np.array([live.h]),
                np.array([live.l]),
                np.array([live.c]),
                np.array([live.v]),
            )
        elif self._n and bar.t <= int(self._t[self._n - 1]):
            raise ValueError(f"bar time {bar.t} is not after the last history bar")
        self._live = bar
        return live is not None

    def append(self, arrays: Mapping[str, npt.ArrayLike]) -> int:
        """Append bars in time order. A first row with the live bar's timestamp replaces it; the
        previous live bar joins history; the newest appended row becomes the live bar.

        Returns the number of bars that joined history. Raises ValueError on malformed or
        out-of-order input (nothing changes then).
        """
        cols = validate_bars(arrays)
        n = cols["t"].shape[0]
        if n == 0:
            return 0
        live = self._live
        t0 = int(cols["t"][0])
        if live is not None:
            if t0 < live.t:
                raise ValueError(f"appended bar time {t0} is older than the live bar {live.t}")
            if t0 > live.t:
                # The old live bar is complete: it goes first.
                cols = {
                    name: np.concatenate(([getattr(live, name)], cols[name])).astype(cols[name].dtype)
                    for name in COLUMNS
                }
                n += 1
        elif self._n and t0 <= int(self._t[self._n - 1]):
            raise ValueError(f"appended bar time {t0} is not after the last history bar")
        before = self._n
        if n > 1:
            self._push_history(*(cols[name][:-1] for name in COLUMNS))
        self._live = LiveBar(
            int(cols["t"][-1]),
            float(cols["o"][-1]),
            float(cols["h"][-1]),
            float(cols["l"][-1]),
            float(cols["c"][-1]),
            float(cols["v"][-1]),
        )
        return self._n - before

    # ---------------------------------------------------------------- internals

    def _push_history(self, t: I64, o: F64, h: F64, low: F64, c: F64, v: F64) -> None:
        m = t.shape[0]
        need = self._n + m
        if need > self._cap:
            cap = self._cap
            while cap < need:
                cap *= 2
            for name in COLUMNS:
                old = getattr(self, "_" + name)
                new = np.empty(cap, dtype=old.dtype)
                new[: self._n] = old[: self._n]
                setattr(self, "_" + name, new)
            self._cap = cap
        a, b = self._n, need
        self._t[a:b] = t
        self._o[a:b] = o
        self._h[a:b] = h
        self._l[a:b] = low
        self._c[a:b] = c
        self._v[a:b] = v
        self._n = need
        self._lo = min(self._lo, float(low.min()))
        self._hi = max(self._hi, float(h.max()))
        self._vmax = max(self._vmax, float(v.max()))
        self._update_blocks(a, b)
        self.version += 1

    def _rebuild_stats(self) -> None:
        n = self._n
        if n == 0:
            self._lo, self._hi, self._vmax = np.inf, -np.inf, 0.0
            self._blk_hi = self._blk_lo = self._blk_v = np.empty(0)
            return
        self._lo = float(self._l[:n].min())
        self._hi = float(self._h[:n].max())
        self._vmax = float(self._v[:n].max())
        nb = -(-n // BLOCK)
        cap_b = max(16, -(-self._cap // BLOCK))
        self._blk_hi = np.full(cap_b, -np.inf)
        self._blk_lo = np.full(cap_b, np.inf)
        self._blk_v = np.zeros(cap_b)
        starts = np.arange(0, n, BLOCK)
        self._blk_hi[:nb] = np.maximum.reduceat(self._h[:n], starts)
        self._blk_lo[:nb] = np.minimum.reduceat(self._l[:n], starts)
        self._blk_v[:nb] = np.maximum.reduceat(self._v[:n], starts)

    def _update_blocks(self, a: int, b: int) -> None:
        """Fold history rows [a, b) into the per-block extremes."""
        nb = -(-b // BLOCK)
        if nb > self._blk_hi.shape[0]:
            cap_b = max(16, nb * 2)
            for name, fill in (("_blk_hi", -np.inf), ("_blk_lo", np.inf), ("_blk_v", 0.0)):
                old = getattr(self, name)
                new = np.full(cap_b, fill)
                new[: old.shape[0]] = old
                setattr(self, name, new)
        first, last = a // BLOCK, (b - 1) // BLOCK
        for blk in range(first, last + 1):
            s, e = max(a, blk * BLOCK), min(b, (blk + 1) * BLOCK)
            self._blk_hi[blk] = max(self._blk_hi[blk], self._h[s:e].max())
            self._blk_lo[blk] = min(self._blk_lo[blk], self._l[s:e].min())
            self._blk_v[blk] = max(self._blk_v[blk], self._v[s:e].max())


def _check_bar(t: int, o: float, h: float, low: float, c: float, v: float) -> LiveBar:
    vals = (o, h, low, c, v)
    if not all(np.isfinite(vals)):
        raise ValueError(f"bar values must be finite, got o={o} h={h} l={low} c={c} v={v}")
    if v < 0:
        raise ValueError(f"volume must not be negative, got {v}")
    if h < max(o, c, low) or low > min(o, c):
        raise ValueError(f"inconsistent bar: o={o} h={h} l={low} c={c} (need l <= o,c <= h)")
    return LiveBar(t, o, h, low, c, v)


def validate_bars(arrays: Mapping[str, npt.ArrayLike]) -> dict[str, np.ndarray]:
    """Check and convert bar columns: t → int64 ns (strictly increasing), o/h/l/c/v → float64.

    Raises ValueError naming the first problem found.
    """
    missing = [name for name in COLUMNS if name not in arrays]
    if missing:
        raise ValueError(f"bar arrays are missing column(s) {missing}; need {list(COLUMNS)}")
    t_in = np.asarray(arrays["t"])
    if t_in.ndim != 1:
        raise ValueError(f"column 't' must be one-dimensional, got shape {t_in.shape}")
    if t_in.dtype.kind == "M":
        t = t_in.astype("datetime64[ns]").astype(np.int64)
    elif t_in.dtype.kind in "iu":
        t = t_in.astype(np.int64, copy=False)
    elif t_in.size == 0:
        t = np.empty(0, dtype=np.int64)
    else:
        raise ValueError(f"column 't' must be int64 epoch nanoseconds, got dtype {t_in.dtype}")
    n = t.shape[0]
    out: dict[str, np.ndarray] = {"t": t}
    for name in COLUMNS[1:]:
        col = np.asarray(arrays[name], dtype=np.float64)
        if col.shape != (n,):
            raise ValueError(f"column {name!r} has shape {col.shape}, expected ({n},) like 't'")
        out[name] = col
    if n == 0:
        return out
    if n > 1 and not bool(np.all(np.diff(t) > 0)):
        bad = int(np.argmin(np.diff(t) > 0)) + 1
        raise ValueError(f"timestamps must be strictly increasing; row {bad} is not after row {bad - 1}")
    stacked = np.stack([out[name] for name in COLUMNS[1:]])
    if not bool(np.isfinite(stacked).all()):
        raise ValueError("bar values must be finite (found NaN or inf)")
    o, h, low, c, v = (out[name] for name in COLUMNS[1:])
    bad_mask = (h < np.maximum(np.maximum(o, c), low)) | (low > np.minimum(o, c)) | (v < 0)
    if bool(bad_mask.any()):
        row = int(np.argmax(bad_mask))
        raise ValueError(
            f"inconsistent bar at row {row}: o={o[row]} h={h[row]} l={low[row]} c={c[row]} v={v[row]} "
            "(need l <= o,c <= h and v >= 0)"
        )
    return out
