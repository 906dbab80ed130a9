"""Time axis for a bar-index x axis: ticks on round calendar boundaries, labelled with real times.

The x coordinate is the bar index, so nights, weekends and holidays take no space. Ticks go on
the first bar of each new minute-group / hour / day / month / year, choosing the smallest unit
that gives no more labels than fit.

Times are shown in the axis' zone (the window's display zone, :meth:`TimeAxis.set_tz`), except on
daily bars: those are dates, taken from the bar's UTC start (a stock's day starts at New York
midnight, a crypto pair's at UTC midnight, docs/alpaca-rules.md), so a day, week or month tick sits
on the session it names in every display zone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any, Final

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from widgets.chart.store import BarStore

_MIN: Final = 60 * 10**9
#: bars at least this far apart (median) are daily: a New York day is 23 to 25 hours long
_DAILY_SPACING: Final = 20 * 60 * _MIN


class TickUnit(StrEnum):
    """The calendar or clock step between time-axis labels."""

    MIN_1 = "1min"
    MIN_5 = "5min"
    MIN_15 = "15min"
    MIN_30 = "30min"
    HOUR_1 = "1h"
    HOUR_2 = "2h"
    HOUR_4 = "4h"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    YEAR_5 = "5year"


# (unit, size in ns for sub-day units, or 0 for calendar units), finest first
_UNITS: Final = (
    (TickUnit.MIN_1, _MIN),
    (TickUnit.MIN_5, 5 * _MIN),
    (TickUnit.MIN_15, 15 * _MIN),
    (TickUnit.MIN_30, 30 * _MIN),
    (TickUnit.HOUR_1, 60 * _MIN),
    (TickUnit.HOUR_2, 120 * _MIN),
    (TickUnit.HOUR_4, 240 * _MIN),
    (TickUnit.DAY, 0),
    (TickUnit.WEEK, 0),
    (TickUnit.MONTH, 0),
    (TickUnit.QUARTER, 0),
    (TickUnit.YEAR, 0),
    (TickUnit.YEAR_5, 0),
)
_MONTHS_PER: Final = {TickUnit.MONTH: 1, TickUnit.QUARTER: 3, TickUnit.YEAR: 12, TickUnit.YEAR_5: 60}
_MAX_SAMPLES: Final = 3000
#: English month abbreviations, as ``%b`` gives in the C locale
MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_Ticks = list[tuple[float, list[float]]]
_LABEL_PX: Final = 90.0
#: the least room a value-axis label gets (pixels between neighbouring labels)
VALUE_LABEL_PX: Final = 40.0
#: set as ``AxisItem.picture`` once a LeanAxis has laid itself out; pyqtgraph resets it to None
#: whenever the axis must be redrawn (range, size, ticks, pens, font)
_LAID_OUT: Final = QtGui.QPicture()
_AA: Final = QtGui.QPainter.RenderHint.Antialiasing


def tick_positions(t: np.ndarray, first_index: int, step: int, unit: TickUnit, offset_ns: int) -> np.ndarray:
    """Bar indexes (of ``t`` sampled every ``step`` from ``first_index``) where ``unit`` rolls over."""
    local = t + offset_ns
    if unit == TickUnit.DAY:
        key = local // (1440 * _MIN)
    elif unit == TickUnit.WEEK:
        key = (local // (1440 * _MIN) + 3) // 7  # weeks starting Monday (1970-01-01 was a Thursday)
    elif unit in _MONTHS_PER:
        months = local.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        key = months // _MONTHS_PER[unit]
    else:
        size = dict(_UNITS)[unit]
        key = local // size
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    return first_index + change * step


class LeanAxis(pg.AxisItem):
    """A pyqtgraph axis that paints its first tick level directly.

    pyqtgraph's AxisItem lays out three tick levels through a general routine (a Point per tick
    end, a painter-measured box per label), records them into a QPicture and replays it: on a
    chart that scrolls with every new bar that is ~0.8 ms a frame for the time axis and ~1.4 ms
    for a price axis whenever its range moves. This axis keeps pyqtgraph's layout, linking and
    styling, and paints the marks of the first tick level with one ``drawLines`` and its labels
    from cached ``QStaticText``. The layout is recomputed only when pyqtgraph invalidates the
    axis; the labels of a one-bar shift are the same strings, so their text layout is reused.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lines: list[QtCore.QLineF] = []
        self._labels: list[tuple[QtCore.QPointF, QtGui.QStaticText]] = []
        self._texts: dict[str, QtGui.QStaticText] = {}
        self._font_key = ""

    def _static_text(self, s: str, font: QtGui.QFont) -> QtGui.QStaticText:
        st = self._texts.get(s)
        if st is None:
            if len(self._texts) > 512:
                self._texts.clear()
            st = self._texts[s] = QtGui.QStaticText(s)
            st.setTextFormat(QtCore.Qt.TextFormat.PlainText)
            st.prepare(QtGui.QTransform(), font)
        return st

    def level_ticks(self, length: float) -> tuple[list[float], list[str]]:
        """Values and labels of the first tick level for an axis ``length`` pixels long."""
        lo, hi = self.range
        if self._tickLevels is not None:
            level = self._tickLevels[0] if self._tickLevels else []
            return [float(v) for v, _ in level], [str(t) for _, t in level]
        levels = self.tickValues(lo, hi, length)
        if not levels:
            return [], []
        spacing, values = levels[0]
        values = [float(v) for v in values]
        return values, self.tickStrings(values, self.autoSIPrefixScale * self.scale, spacing)

    def _layout(self, font: QtGui.QFont) -> None:
        self._lines, self._labels = [], []
        bounds = self.mapRectFromParent(self.geometry())
        vertical = self.orientation in ("left", "right")
        length = bounds.height() if vertical else bounds.width()
        lo, hi = self.range
        if length <= 0 or hi == lo:
            return
        values, strings = self.level_ticks(length)
        tick = float(self.style["tickLength"])
        offset = max(0.0, tick) + float(self.style["tickTextOffset"][0 if vertical else 1])
        scale = length / (hi - lo)
        show = bool(self.style["showValues"])
        lines = self._lines
        labels = self._labels
        size2 = 0.0
        if self.orientation == "right":
            edge, direction = bounds.left(), 1.0
            lines.append(QtCore.QLineF(edge + 1, bounds.top() - 1, edge + 1, bounds.bottom() + 1))
        elif self.orientation == "left":
            edge, direction = bounds.right(), -1.0
            lines.append(QtCore.QLineF(edge - 1, bounds.top() - 1, edge - 1, bounds.bottom() + 1))
        elif self.orientation == "bottom":
            edge, direction = bounds.top(), 1.0
            lines.append(QtCore.QLineF(bounds.left() - 1, edge + 1, bounds.right() + 1, edge + 1))
        else:
            edge, direction = bounds.bottom(), -1.0
            lines.append(QtCore.QLineF(bounds.left() - 1, edge - 1, bounds.right() + 1, edge - 1))
        end = edge + tick * direction
        for v, s in zip(values, strings, strict=False):
            if vertical:
                pos = bounds.bottom() - (v - lo) * scale
                if not bounds.top() - 0.5 <= pos <= bounds.bottom() + 0.5:
                    continue
                lines.append(QtCore.QLineF(edge, pos, end, pos))
            else:
                pos = bounds.left() + (v - lo) * scale
                if not bounds.left() - 0.5 <= pos <= bounds.right() + 0.5:
                    continue
                lines.append(QtCore.QLineF(pos, edge, pos, end))
            if not show or not s:
                continue
            st = self._static_text(s, font)
            w, h = st.size().width(), st.size().height()
            if vertical:
                x = edge + offset if direction > 0 else edge - offset - w
                y = pos - h / 2
                if pos - 0.4 * h < bounds.top() or pos + 0.4 * h > bounds.bottom():
                    continue  # pyqtgraph's rule: the label's ink (80 % of its line) fits
                size2 = max(size2, w)
            else:
                x = pos - w / 2
                y = edge + offset if direction > 0 else edge - offset - h
                if x < bounds.left() or x + w > bounds.right():
                    continue
                size2 = max(size2, h * 0.8)  # pyqtgraph's measure of a label's height
            labels.append((QtCore.QPointF(x, y), st))
        if show:
            self._updateMaxTextSize(math.ceil(size2))

    def paint(self, p: QtGui.QPainter, *args: Any) -> None:
        font = self.style["tickFont"]
        if font is not None:
            p.setFont(font)
        font = p.font()
        key = font.key()
        if key != self._font_key:
            self._texts.clear()
            self._font_key = key
            self.picture = None
        if self.picture is None:
            self._layout(font)
            self.picture = _LAID_OUT
        p.setRenderHint(_AA, False)
        if self._lines:
            p.setPen(self.pen())
            p.drawLines(self._lines[:1])
            if len(self._lines) > 1:
                p.setPen(self.tickPen())
                p.drawLines(self._lines[1:])
        if self._labels:
            p.setPen(self.textPen())
            for pos, st in self._labels:
                p.drawStaticText(pos, st)


def nice_ticks(lo: float, hi: float, length_px: float, min_px: float = VALUE_LABEL_PX) -> list[float]:
    """Round values (1, 2 or 5 × 10^k apart) between ``lo`` and ``hi``, at least ``min_px`` apart."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or length_px <= 0:
        return []
    raw = (hi - lo) * min_px / length_px
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw)
    first = math.ceil(lo / step)
    last = math.floor(hi / step)
    return [i * step for i in range(first, last + 1)]


class ValueAxis(LeanAxis):
    """Price axis: one level of round ticks, at least ``VALUE_LABEL_PX`` apart (the grid's too)."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        values = nice_ticks(minVal, maxVal, size)
        if len(values) < 2:
            return [(maxVal - minVal, values)] if values else []
        return [(values[1] - values[0], values)]


class TimeAxis(LeanAxis):
    """Bottom axis mapping bar indexes to the store's timestamps, displayed in ``tz``."""

    def __init__(
        self,
        store: BarStore,
        tz: tzinfo | None = UTC,
        *,
        share_ticks_with: TimeAxis | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(orientation="bottom", **kwargs)
        self.store = store
        self.tz = tz  # None: this computer's zone
        self._unit = TickUnit.DAY
        self._dates = False  # the bars in view are daily: labels are their UTC dates
        # (range, pixel size, bars, version) -> (ticks, unit). Several entries because the axis
        # and the grid ask with slightly different pixel sizes; one entry made them evict each
        # other and recompute on every paint. Linked panes over the same store share one cache.
        self._cache: dict[tuple[float, float, float, int, int], tuple[_Ticks, TickUnit, bool]] = (
            {} if share_ticks_with is None else share_ticks_with._cache
        )

    def set_tz(self, tz: tzinfo | None) -> None:
        """Label the ticks in ``tz`` (None: this computer's zone) from now on."""
        self.tz = tz
        self._cache.clear()  # keyed without the zone (shared by the linked panes: cleared once)
        self.picture = None
        self.update()

    def _zone(self) -> tzinfo | None:
        return UTC if self._dates else self.tz

    def _offset_ns(self, t_ns: int) -> int:
        off = datetime.fromtimestamp(t_ns / 1e9, tz=UTC).astimezone(self._zone()).utcoffset()
        return 0 if off is None else int(off.total_seconds() * 1e9)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        # Called by the axis and by the grid on every paint; ticks depend only on the range and
        # the bars, so a tick (live-bar update) reuses them.
        key = (minVal, maxVal, size, len(self.store), self.store.version)
        hit = self._cache.get(key)
        if hit is None:
            ticks = self._compute_ticks(minVal, maxVal, size)
            hit = self._cache[key] = (ticks, self._unit, self._dates)
            if len(self._cache) > 12:
                del self._cache[next(iter(self._cache))]
        # tickStrings (called right after by the axis) formats for this unit and zone
        _, self._unit, self._dates = hit
        return hit[0]

    def _compute_ticks(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        n = len(self.store)
        i0, i1 = max(0, int(np.ceil(minVal))), min(n, int(np.floor(maxVal)) + 1)
        if i1 - i0 < 2:
            return []
        step = max(1, (i1 - i0) // _MAX_SAMPLES)
        t = self.store.times(i0, i1, step)
        if t.shape[0] < 2:
            return []
        spacing = int(np.median(np.diff(t[: min(64, t.shape[0])])))
        self._dates = spacing >= step * _DAILY_SPACING
        offset = self._offset_ns(int(t[t.shape[0] // 2]))
        target = max(2, int(size / _LABEL_PX))
        chosen: np.ndarray = np.empty(0)
        for name, size_ns in _UNITS:
            # Skip units finer than the data's own spacing (minute ticks on daily bars).
            if size_ns and step * size_ns < spacing:
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
            dt = datetime.fromtimestamp(t / 1e9, tz=UTC).astimezone(self._zone())
            unit = self._unit
            # Formatted by hand: under PySide6 each strftime call imports ``time`` through
            # shiboken's Python import hook, and labels are rebuilt whenever the view moves.
            mon = MONTHS[dt.month - 1]
            if unit in (TickUnit.YEAR, TickUnit.YEAR_5):
                out.append(f"{dt.year:04d}")
            elif unit in (TickUnit.MONTH, TickUnit.QUARTER):
                out.append(f"{mon} {dt.year:04d}" if dt.month == 1 else mon)
            elif unit in (TickUnit.DAY, TickUnit.WEEK):
                out.append(f"{mon} {dt.day:02d}")
            else:
                day = dt.date()
                new_day = prev_day is not None and day != prev_day
                out.append(f"{mon} {dt.day:02d}" if new_day else f"{dt.hour:02d}:{dt.minute:02d}")
                prev_day = day
        return out


class GridItem(pg.GraphicsObject):
    """Grid lines at the axes' major ticks, drawn as one cheap ``drawLines`` call.

    pyqtgraph's own axis grid repaints the whole plot area from each axis' picture (about 3 ms
    per axis per frame at 1600×900 in the raster engine); this item costs well under 0.1 ms.
    """

    def __init__(self, x_axis: pg.AxisItem | None, y_axis: pg.AxisItem | None, color: str) -> None:
        super().__init__()
        self.x_axis, self.y_axis = x_axis, y_axis
        self._pen = pg.mkPen(color)
        self._pen.setCosmetic(True)
        self.setZValue(-100)
        self._y_key: tuple[float, float, float] | None = None
        self._y_ticks: list[float] = []

    def boundingRect(self) -> QtCore.QRectF:
        vb = self.getViewBox()
        if vb is None:
            return QtCore.QRectF()
        return vb.viewRect()

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange: Any = None) -> None:
        return None

    def paint(self, p: QtGui.QPainter, *args: Any) -> None:
        vb = self.getViewBox()
        if vb is None:
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        lines = []
        if self.x_axis is not None:
            levels = self.x_axis.tickValues(x0, x1, max(1.0, float(vb.width())))
            if levels:
                lines += [QtCore.QLineF(x, y0, x, y1) for x in levels[0][1]]
        if self.y_axis is not None:
            key = (y0, y1, float(vb.height()))
            if key != self._y_key:
                levels = self.y_axis.tickValues(y0, y1, max(1.0, key[2]))
                self._y_ticks = list(levels[0][1]) if levels else []
                self._y_key = key
            lines += [QtCore.QLineF(x0, y, x1, y) for y in self._y_ticks]
        if lines:
            p.setPen(self._pen)
            p.drawLines(lines)


def compact_number(v: float) -> str:
    """1234567 → ``1.23M``; small numbers keep up to 4 significant digits."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= size:
            return f"{v / size:.3g}{suffix}"
    return f"{v:.4g}"


class CompactAxis(ValueAxis):
    """Value axis with compact labels (volume), and no label at zero."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return ["" if v == 0 else compact_number(v * scale) for v in values]
