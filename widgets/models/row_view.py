"""``RowTableView``: a QTableView that paints :class:`~widgets.models.table.Row` caches directly.

Why: the stock paint path asks the model for 7 roles per visible cell, and through a
``QSortFilterProxyModel`` each of those also costs a Python ``rowCount``/``columnCount`` (the
source's ``index()`` checks ``hasIndex``) — about 20 Python calls per cell, ~25 ms for a
1600x900 blotter on a busy 2-core box. Here ``paintEvent`` makes one Python call per *exposed row*
(to find its :class:`Row`) and draws each cell's text from a ``QStaticText`` that the row builds
once, the first time it is painted, and keeps until the row is replaced by an update.

Everything else (selection, keyboard, headers, ``indexAt``, sorting, editing off) is QTableView's
own; only the painting of cells is replaced. Only the rows inside the exposed rectangle are drawn,
so a one-row ``dataChanged`` repaints one row. GUI thread only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QLine, QRect, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPalette, QPen, QStaticText
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from widgets.models.table import Row

#: horizontal text padding inside a cell, like QStyledItemDelegate's focus-frame margin + 1
PAD = 4

RowSource = Callable[[int], Row | None]
#: one exposed row: (text top, y, height, Row, selected, cell texts, their widths)
#: the exposed columns in visual order: (logical index, x, width)
_Columns = list[tuple[int, int, int]]
_Painted = tuple[int, int, int, Row, bool, list[QStaticText], list[float]]


def _elided(row: Row, column: int, avail: int, metrics: QFontMetrics) -> QStaticText:
    """The cell's text elided to ``avail`` px (cached on the row, like the stock view's "…")."""
    cache = row.elided
    if cache is None:
        cache = row.elided = {}
    st = cache.get((column, avail))
    if st is None:
        text = metrics.elidedText(row.cells[column], Qt.TextElideMode.ElideRight, avail)
        st = cache[(column, avail)] = QStaticText(text)
        st.setTextFormat(Qt.TextFormat.PlainText)
    return st


#: Laid-out texts by their string, shared by every row of every view: a live price takes few values
#: over a session (it ticks back and forth), so a changed cell usually finds its new text laid out
#: already instead of shaping it again. Bounded: emptied when full.
_LAID_OUT: dict[str, tuple[QStaticText, float]] = {}
LAID_OUT_MAX = 2048  # some 1.3 KB each, laid out and drawn


def laid_out(text: str) -> tuple[QStaticText, float]:
    """``text`` as a plain-text ``QStaticText`` and its width (cached by the string)."""
    hit = _LAID_OUT.get(text)
    if hit is None:
        if len(_LAID_OUT) >= LAID_OUT_MAX:
            _LAID_OUT.clear()
        st = QStaticText(text)
        st.setTextFormat(Qt.TextFormat.PlainText)
        hit = _LAID_OUT[text] = (st, st.size().width())
    return hit


def static_texts(row: Row) -> list[QStaticText]:
    """The row's cell texts as laid-out ``QStaticText`` (built on first paint, cached on the row; a
    ``None`` entry, a cell changed since the row's previous version, is laid out anew)."""
    st = row.static
    if st is None:
        pairs = [laid_out(text) for text in row.cells]
        st = row.static = [p[0] for p in pairs]
        row.static_w = [p[1] for p in pairs]
    elif None in st:
        widths = row.static_w
        assert widths is not None
        for c, s in enumerate(st):
            if s is None:
                st[c], widths[c] = laid_out(row.cells[c])
    return st


class RowTableView(QTableView):
    """A table view for :class:`~widgets.models.table.RowTableModel` rows (directly or through a
    proxy): ``row_source(view_row)`` returns the :class:`Row` shown at ``view_row``.

    Without a ``row_source`` it paints like a plain QTableView.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row_source: RowSource | None = None
        self.numeric: frozenset[int] = frozenset()
        self.paints = 0

    def set_row_source(self, source: RowSource | None, numeric: frozenset[int] = frozenset()) -> None:
        self.row_source = source
        self.numeric = numeric
        self.viewport().update()

    def show_as_list(self) -> None:
        """The panels' list look: whole rows selected, one at a time; no row numbers; rows 22 px
        high, fixed; the last column takes the width left."""
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(22)
        self.horizontalHeader().setStretchLastSection(True)

    def fit_columns(self, samples: dict[int, str]) -> None:
        """Size each logical column in ``samples`` to show its title (with the sort arrow) and the
        sample text whole, in this view's font; the user can still drag them."""
        header = self.horizontalHeader()
        metrics = self.fontMetrics()
        for column, text in samples.items():
            width = max(header.sectionSizeHint(column), metrics.horizontalAdvance(text) + 2 * PAD + 2)
            header.resizeSection(column, width)

    def paintEvent(self, event: QPaintEvent) -> None:
        source = self.row_source
        model = self.model()
        if source is None or model is None:
            super().paintEvent(event)
            return
        self.paints += 1
        exposed = event.rect()
        vh = self.verticalHeader()
        rows = model.rowCount()
        cols = model.columnCount()
        if rows == 0 or cols == 0:
            return
        first = vh.visualIndexAt(exposed.top())
        if first < 0:
            return
        last = vh.visualIndexAt(exposed.bottom())
        if last < 0:
            last = rows - 1
        columns = self._exposed_columns(exposed)
        if not columns:
            return
        painter = QPainter(self.viewport())
        painter.setFont(self.font())
        painted = self._row_backgrounds(painter, source, columns, first, last)
        self._draw_cells(painter, exposed, columns, painted)
        if self.showGrid() and painted:
            self._draw_grid(painter, columns, painted)
        painter.end()

    def _exposed_columns(self, exposed: QRect) -> _Columns:
        """``(logical, x, width)`` of the shown columns that meet ``exposed``, in visual order."""
        hh = self.horizontalHeader()
        columns: _Columns = []
        for visual in range(hh.count()):
            logical = hh.logicalIndex(visual)
            if hh.isSectionHidden(logical):
                continue
            x = hh.sectionViewportPosition(logical)
            w = hh.sectionSize(logical)
            if x + w <= exposed.left() or x > exposed.right():
                continue
            columns.append((logical, x, w))
        return columns

    def _row_backgrounds(
        self, painter: QPainter, source: RowSource, columns: _Columns, first: int, last: int
    ) -> list[_Painted]:
        """The exposed rows to draw (selected ones get the highlight now), top to bottom."""
        vh = self.verticalHeader()
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        selection = self.selectionModel()
        root = self.rootIndex()
        line_h = self.fontMetrics().height()
        right_edge = columns[-1][1] + columns[-1][2]
        painted: list[_Painted] = []
        for visual in range(first, last + 1):
            r = vh.logicalIndex(visual)
            if vh.isSectionHidden(r):
                continue
            row = source(r)
            if row is None:
                continue
            y = vh.sectionViewportPosition(r)
            h = vh.sectionSize(r)
            selected = selection is not None and selection.isRowSelected(r, root)
            if selected:
                painter.fillRect(QRect(columns[0][1], y, right_edge - columns[0][1], h), highlight)
            texts = static_texts(row)
            assert row.static_w is not None
            painted.append((y + (h - line_h) // 2, y, h, row, selected, texts, row.static_w))
        return painted

    def _draw_cells(
        self, painter: QPainter, exposed: QRect, columns: _Columns, painted: list[_Painted]
    ) -> None:
        """Each column's texts, clipped to the column, right-aligned when numeric, elided when wide."""
        palette = self.palette()
        text_color = palette.color(QPalette.ColorRole.Text)
        highlighted_text = palette.color(QPalette.ColorRole.HighlightedText)
        grid = self.showGrid()
        numeric = self.numeric
        metrics = self.fontMetrics()
        draw = painter.drawStaticText
        for logical, x, w in columns:
            painter.setClipRect(QRect(x, exposed.top(), w - 1 if grid else w, exposed.height()))
            right = logical in numeric
            avail = w - 2 * PAD
            left_x = x + PAD
            current: QColor | None = None
            for ty, _y, _h, row, selected, texts, widths in painted:
                if logical >= len(texts):
                    continue
                color = highlighted_text if selected else (row.colors.get(logical) or text_color)
                if color is not current:
                    painter.setPen(color)
                    current = color
                tw = widths[logical]
                if tw > avail:
                    draw(left_x, ty, _elided(row, logical, avail, metrics))
                elif right:
                    draw(x + w - PAD - math.ceil(tw), ty, texts[logical])
                else:
                    draw(left_x, ty, texts[logical])
        painter.setClipping(False)

    def _draw_grid(self, painter: QPainter, columns: _Columns, painted: list[_Painted]) -> None:
        """The grid lines around the painted cells, in the style's grid colour."""
        opt = QStyleOptionViewItem()
        opt.initFrom(self)
        rgba = self.style().styleHint(QStyle.StyleHint.SH_Table_GridLineColor, opt, self)
        grid_color = QColor.fromRgba(rgba & 0xFFFFFFFF)
        top = painted[0][1]
        bottom = painted[-1][1] + painted[-1][2] - 1
        left = columns[0][1]
        right_edge = columns[-1][1] + columns[-1][2]
        if self.gridStyle() == Qt.PenStyle.SolidLine:
            # One-pixel solid fills: the raster engine's fastest path (a drawLines of the same
            # ~50 lines through the cosmetic stroker took ~1 ms a frame on a full blotter).
            fill = painter.fillRect
            for _logical, x, w in columns:
                fill(x + w - 1, top, 1, bottom - top + 1, grid_color)
            span = right_edge - left
            for _t, y, h, *_rest in painted:
                fill(left, y + h - 1, span, 1, grid_color)
        else:
            painter.setPen(QPen(grid_color, 0, self.gridStyle()))
            lines = [QLine(x + w - 1, top, x + w - 1, bottom) for _logical, x, w in columns]
            lines += [QLine(left, y + h - 1, right_edge - 1, y + h - 1) for _t, y, h, *_rest in painted]
            painter.drawLines(lines)
