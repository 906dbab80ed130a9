"""Columns of one-minute (or coarser) bars as numpy arrays, and their aggregation into coarser ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Bars:
    """Column arrays of bars, sorted by ``t`` (bar start, ns since the epoch, UTC)."""

    t: I64
    o: F64
    h: F64
    l: F64  # noqa: E741 - Alpaca's key
    c: F64
    v: F64
    n: I64
    vw: F64

    def __len__(self) -> int:
        return len(self.t)

    @staticmethod
    def empty() -> Bars:
        f = np.empty(0, dtype=np.float64)
        i = np.empty(0, dtype=np.int64)
        return Bars(i, f, f, f, f, f, i, f)

    def take(self, sel: slice | npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Bars:
        return Bars(
            self.t[sel],
            self.o[sel],
            self.h[sel],
            self.l[sel],
            self.c[sel],
            self.v[sel],
            self.n[sel],
            self.vw[sel],
        )

    @staticmethod
    def concat(parts: list[Bars]) -> Bars:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Bars.empty()
        if len(parts) == 1:
            return parts[0]
        c = [np.concatenate([getattr(p, f) for p in parts]) for f in Bars.__slots__]
        return Bars(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])

    @staticmethod
    def from_rows(rows: list[tuple[int, float, float, float, float, float, int, float]]) -> Bars:
        if not rows:
            return Bars.empty()
        cols = list(zip(*rows, strict=True))
        f = [np.asarray(cols[i], dtype=np.float64) for i in range(8)]
        return Bars(
            np.asarray(cols[0], dtype=np.int64),
            f[1],
            f[2],
            f[3],
            f[4],
            f[5],
            np.asarray(cols[6], dtype=np.int64),
            f[7],
        )


def aggregate(bars: Bars, keys: I64) -> Bars:
    """Aggregate consecutive bars sharing a bucket key (keys must be non-decreasing)."""
    if len(bars) == 0:
        return bars
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)] - 1
    v = np.add.reduceat(bars.v, starts)
    pv = np.add.reduceat(bars.vw * bars.v, starts)
    c = bars.c[ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        vw = np.where(v > 0, pv / np.where(v > 0, v, 1), c)
    return Bars(
        keys[starts],
        bars.o[starts],
        np.maximum.reduceat(bars.h, starts),
        np.minimum.reduceat(bars.l, starts),
        c,
        v,
        np.add.reduceat(bars.n, starts),
        np.round(vw, 4).astype(np.float64),
    )


# ---------------------------------------------------------------------------------------------
# Bar periods: any timeframe Alpaca's bar requests accept (``7Min``, ``3Month`` ...), wider than the
# terminal's five choices (services.domain.enums.Timeframe).
