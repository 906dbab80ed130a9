"""Time axis for a bar-index x axis: ticks on round calendar boundaries, labelled with real times.

The x coordinate is the bar index, so nights, weekends and holidays take no space. Ticks go on
the first bar of each new minute-group / hour / day / month / year, choosing the smallest unit
that gives no more labels than fit.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any, Final

import numpy as np
import pyqtgraph as pg

from widgets.chart.store import BarStore

_MIN: Final = 60 * 10**9
# (name, size in ns for sub-day units, or 0 for calendar units)
_UNITS: Final = (
    ("1min", _MIN),
    ("5min", 5 * _MIN),
    ("15min", 15 * _MIN),
    ("30min", 30 * _MIN),
    ("1h", 60 * _MIN),
    ("2h", 120 * _MIN),
    ("4h", 240 * _MIN),
    ("day", 0),
    ("week", 0),
    ("month", 0),
    ("quarter", 0),
    ("year", 0),
    ("5year", 0),
)
_MAX_SAMPLES: Final = 6000
_LABEL_PX: Final = 90.0


def tick_positions(t: np.ndarray, first_index: int, step: int, unit: str, offset_ns: int) -> np.ndarray:
    """Bar indexes (of ``t`` sampled every ``step`` from ``first_index``) where ``unit`` rolls over."""
    local = t + offset_ns
    if unit == "day":
        key = local // (1440 * _MIN)
    elif unit == "week":
        key = (local // (1440 * _MIN) + 3) // 7  # weeks starting Monday (1970-01-01 was a Thursday)
    elif unit in ("month", "quarter", "year", "5year"):
        months = local.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        div = {"month": 1, "quarter": 3, "year": 12, "5year": 60}[unit]
        key = months // div
    else:
        size = dict(_UNITS)[unit]
        key = local // size
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    return first_index + change * step


class TimeAxis(pg.AxisItem):
    """Bottom axis mapping bar indexes to the store's timestamps, displayed in ``tz``."""

    def __init__(self, store: BarStore, tz: tzinfo = UTC, **kwargs: Any) -> None:
        super().__init__(orientation="bottom", **kwargs)
        self.store = store
        self.tz = tz
        self._unit = "day"

    def _offset_ns(self, t_ns: int) -> int:
        off = datetime.fromtimestamp(t_ns / 1e9, tz=UTC).astimezone(self.tz).utcoffset()
        return 0 if off is None else int(off.total_seconds() * 1e9)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        n = len(self.store)
        i0, i1 = max(0, int(np.ceil(minVal))), min(n, int(np.floor(maxVal)) + 1)
        if i1 - i0 < 2:
            return []
        step = max(1, (i1 - i0) // _MAX_SAMPLES)
        t = self.store.times(i0, i1, step)
        if t.shape[0] < 2:
            return []
        offset = self._offset_ns(int(t[t.shape[0] // 2]))
        target = max(2, int(size / _LABEL_PX))
        chosen: np.ndarray = np.empty(0)
        for name, size_ns in _UNITS:
            # Skip units finer than the data's own spacing (minute ticks on daily bars).
            if size_ns and step * size_ns < int(np.median(np.diff(t[: min(64, t.shape[0])]))):
                continue
            pos = tick_positions(t, i0, step, name, offset)
            self._unit = name
            chosen = pos
            if pos.shape[0] <= target:
                break
        return [(1.0, [float(i) for i in chosen])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        out = []
        prev_day = None
        for v in values:
            t = self.store.time_at(round(v))
            if t is None:
                out.append("")
                continue
            dt = datetime.fromtimestamp(t / 1e9, tz=UTC).astimezone(self.tz)
            unit = self._unit
            if unit in ("year", "5year"):
                out.append(dt.strftime("%Y"))
            elif unit in ("month", "quarter"):
                out.append(dt.strftime("%b %Y") if dt.month == 1 else dt.strftime("%b"))
            elif unit in ("day", "week"):
                out.append(dt.strftime("%b %d"))
            else:
                day = dt.date()
                out.append(
                    dt.strftime("%b %d") if prev_day is not None and day != prev_day else dt.strftime("%H:%M")
                )
                prev_day = day
        return out
