"""``RowTableModel``: a keyed, bounded, frame-coalesced QAbstractTableModel.

Service events are *staged* (latest payload per key wins) and applied by :meth:`flush`, at most
once per frame (a single-shot QTimer, ~30 Hz): existing rows are mutated in place, new rows are
inserted with one ``beginInsertRows`` at the end, and ``dataChanged`` is emitted once per flush for
each cluster of nearby changed rows. Clustering, not one min..max span, because a
``QSortFilterProxyModel`` re-examines every source row inside a ``dataChanged`` range: two updates
at rows 3 and 99,000 must not make it walk 99,000 rows.

Rows beyond ``max_rows`` are trimmed from the oldest end (only rows :meth:`removable` allows), in
chunks, so the index rebuild is rare. GUI thread only.

Sorting happens here, not in a ``QSortFilterProxyModel``: :meth:`sort` orders the rows by the
column's precomputed sort value (ties by arrival), and flushes keep that order, inserting new rows
and moving re-keyed rows at their bisected positions. A proxy sorting 100k rows asked this model
for its sort role ~3.4M times through Python (12-17 s); ``list.sort`` with a key takes ~0.1 s.
Rows are found by bisecting the sort key, so no key -> position index has to be rebuilt when a
row is inserted in the middle. Proxies on top only filter (see ``OrdersFilterProxy``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor

from widgets.models.common import TIMES, header_text, shows_times

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
FILTER_ROLE = Qt.ItemDataRole.UserRole + 2
PAYLOAD_ROLE = Qt.ItemDataRole.UserRole + 3
FRAME_MS = 33
#: changed rows closer than this are covered by one dataChanged range
CLUSTER_GAP = 32
#: without REPAINT_SAME, up to this many changed rows announce only their changed cells (beyond it,
#: the rows: one signal per row range instead of one per cell run)
CELL_ROWS = 64

_ALIGN_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_ALIGN_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

AnyIndex = QModelIndex | QPersistentModelIndex

_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_SORT = int(SORT_ROLE)
_FILTER = int(FILTER_ROLE)
_PAYLOAD = int(PAYLOAD_ROLE)


@dataclass(slots=True)
class Row:
    key: str
    cells: list[str]
    sort: list[Any]
    payload: Any
    colors: dict[int, QColor] = field(default_factory=dict)
    filter_key: str = ""
    #: arrival number, set by the model: ties between equal sort values go by arrival
    seq: int = 0
    #: laid-out cell texts, built by the view on first paint (see ``row_view.static_texts``)
    static: list[Any] | None = None
    #: advance width of each ``static`` text in px (right alignment and elision without Qt calls)
    static_w: list[float] | None = None
    #: elided variants of cells wider than their column, keyed by (column, width in px)
    elided: dict[tuple[int, int], Any] | None = None


def clusters(rows: Iterable[int], gap: int = CLUSTER_GAP) -> list[tuple[int, int]]:
    """Sorted, merged ``(first, last)`` ranges covering ``rows``; neighbours within ``gap`` merge."""
    out: list[tuple[int, int]] = []
    for r in sorted(set(rows)):
        if out and r - out[-1][1] <= gap:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out


def _changed_columns(old: Row, row: Row) -> list[int]:
    """The columns whose shown text or colour differ between two versions of a row; the new row
    keeps the old one's laid-out texts for the others (the view lays out only what changed)."""
    shown = [
        c
        for c, (a, b) in enumerate(zip(old.cells, row.cells, strict=True))
        if a != b or old.colors.get(c) != row.colors.get(c)
    ]
    if old.static is not None and old.static_w is not None and len(shown) < len(row.cells):
        row.static = [None if c in shown else st for c, st in enumerate(old.static)]
        row.static_w = list(old.static_w)
    if not shown:
        row.elided = old.elided
    return shown


class _Desc:
    """Reverses the comparison of a sort key (bisecting a descending list)."""

    __slots__ = ("k",)

    def __init__(self, k: tuple[Any, ...]) -> None:
        self.k = k

    def __lt__(self, other: _Desc) -> bool:
        return other.k < self.k


class RowTableModel(QAbstractTableModel):
    """Subclasses define :attr:`COLUMNS`, :attr:`NUMERIC` and :meth:`make_row`."""

    COLUMNS: Sequence[str] = ()
    NUMERIC: frozenset[int] = frozenset()
    #: the header's tooltip per column: what the column means in full ("" for none)
    HEADER_TIPS: Sequence[str] = ()
    #: False for models whose views show only a row's cells and colours: a row staged again with
    #: the same cells and colours (a quote whose sizes alone changed) takes the new payload and
    #: announces nothing, so nothing is repainted.
    REPAINT_SAME: bool = True

    def __init__(self, parent: QObject | None = None, *, max_rows: int = 5_000, trim_chunk: int = 0) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []  # in display order
        self._by_key: dict[str, Row] = {}
        self._pending: dict[str, Any] = {}
        self._seq = 0
        self._sort_col = -1  # -1: arrival order
        self._desc = False
        self.max_rows = max_rows
        self.trim_chunk = trim_chunk or max(1, max_rows // 10)
        self.trimmed_total = 0
        self.flushes = 0
        self.data_changed_emits = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self.flush)
        if shows_times(self.COLUMNS):
            TIMES.changed.connect(self.retime)

    def retime(self) -> None:
        """The display zone changed: every row is made again from its payload (sort values are
        instants, so the order stays), and the headers name the new zone."""
        for i, old in enumerate(self._rows):
            row = self.make_row(old.key, old.payload)
            row.seq = old.seq
            self._rows[i] = self._by_key[old.key] = row
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.COLUMNS) - 1))
        if self.COLUMNS:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self.COLUMNS) - 1)

    # -- subclass hooks ---------------------------------------------------------------------------
    def make_row(self, key: str, payload: Any) -> Row:  # pragma: no cover - abstract
        raise NotImplementedError

    def removable(self, row: Row) -> bool:
        """Whether the trimmer may drop ``row`` (e.g. only closed orders)."""
        return True

    # -- ordering ---------------------------------------------------------------------------------
    def _key(self, row: Row) -> tuple[Any, ...]:
        c = self._sort_col
        return (row.seq,) if c < 0 else (row.sort[c], row.seq)

    def _bisect(self, row: Row) -> int:
        """Where ``row`` is (or would go) in the display order."""
        k = self._key(row)
        if self._desc:
            key_d: Callable[[Row], _Desc] = lambda r: _Desc(self._key(r))  # noqa: E731
            return bisect_left(self._rows, _Desc(k), key=key_d)
        return bisect_left(self._rows, k, key=self._key)

    def _pos(self, row: Row) -> int:
        i = self._bisect(row)
        if i < len(self._rows) and self._rows[i] is row:
            return i
        return self._rows.index(row)  # pragma: no cover - only if a sort value was mutated in place

    @property
    def sort_column(self) -> int:
        return self._sort_col

    @property
    def sort_order(self) -> Qt.SortOrder:
        return Qt.SortOrder.DescendingOrder if self._desc else Qt.SortOrder.AscendingOrder

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Order rows by ``column``'s sort value (``-1``: arrival order); keeps persistent indexes."""
        column = column if 0 <= column < len(self.COLUMNS) else -1
        desc = order == Qt.SortOrder.DescendingOrder
        if (column, desc) == (self._sort_col, self._desc):
            return
        self._sort_col, self._desc = column, desc
        self._relayout()

    def _relayout(self) -> None:
        """Re-order every row by :meth:`_key` (one layout change; persistent indexes follow)."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        held = [(pi, self._rows[pi.row()]) for pi in persistent if 0 <= pi.row() < len(self._rows)]
        self._rows.sort(key=self._key, reverse=self._desc)
        if held:
            where = {id(r): i for i, r in enumerate(self._rows)}
            for pi, row in held:
                self.changePersistentIndex(pi, self.createIndex(where[id(row)], pi.column()))
        self.layoutChanged.emit()

    # -- staging and flushing ---------------------------------------------------------------------
    def stage(self, key: str, payload: Any) -> None:
        """Remember the newest ``payload`` for ``key``; applied at the next frame."""
        self._pending[key] = payload
        if not self._timer.isActive():
            self._timer.start()

    def stage_many(self, items: Iterable[tuple[str, Any]]) -> None:
        for key, payload in items:
            self._pending[key] = payload
        if self._pending and not self._timer.isActive():
            self._timer.start()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Apply everything staged; returns how many rows were touched."""
        self._timer.stop()
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        changed: list[int] = []
        cells: list[tuple[int, list[int]]] = []  # without REPAINT_SAME: (position, changed columns)
        moved: list[tuple[Row, Row]] = []
        new: list[Row] = []
        rows, by_key, col = self._rows, self._by_key, self._sort_col
        for key, payload in pending.items():
            row = self.make_row(key, payload)
            old = by_key.get(key)
            if old is None:
                self._seq += 1
                row.seq = self._seq
                new.append(row)
            else:
                row.seq = old.seq
                if col >= 0 and row.sort[col] != old.sort[col]:
                    moved.append((old, row))
                else:
                    i = self._pos(old)
                    rows[i] = row
                    if self.REPAINT_SAME:
                        changed.append(i)
                    elif shown := _changed_columns(old, row):
                        cells.append((i, shown))
            by_key[key] = row
        if len(cells) > CELL_ROWS:  # many rows: announcing rows costs less than announcing cells
            changed += [i for i, _shown in cells]
            cells = []
        for i, shown in cells:
            for a, b in clusters(shown, 1):  # runs of neighbouring columns: only those cells repaint
                self.dataChanged.emit(self.createIndex(i, a), self.createIndex(i, b))
                self.data_changed_emits += 1
        if changed:
            last_col = len(self.COLUMNS) - 1
            for a, b in clusters(changed):
                # createIndex, not index(): index() re-enters Python (hasIndex -> rowCount and
                # columnCount overrides) for rows we know are valid
                self.dataChanged.emit(self.createIndex(a, 0), self.createIndex(b, last_col))
                self.data_changed_emits += 1
        for old, row in moved:
            self._move(old, row)
        if new:
            self._insert(new)
        self.flushes += 1
        self._trim()
        return len(changed) + len(cells) + len(moved) + len(new)

    def _move(self, old: Row, row: Row) -> None:
        """``row`` replaces ``old`` and its sort value changed: move it, keeping its selection."""
        rows = self._rows
        src = self._pos(old)
        del rows[src]
        dst = self._bisect(row)
        rows.insert(src, old)
        dest_child = dst if dst <= src else dst + 1  # Qt counts the destination before the move
        last_col = len(self.COLUMNS) - 1
        if dst == src or not self.beginMoveRows(QModelIndex(), src, src, QModelIndex(), dest_child):
            rows[src] = row
            self.dataChanged.emit(self.createIndex(src, 0), self.createIndex(src, last_col))
            self.data_changed_emits += 1
            return
        del rows[src]
        rows.insert(dst, row)
        self.endMoveRows()
        self.dataChanged.emit(self.createIndex(dst, 0), self.createIndex(dst, last_col))
        self.data_changed_emits += 1

    def _insert(self, new: list[Row]) -> None:
        """Insert ``new`` rows at their sorted places, one beginInsertRows per landing spot."""
        new.sort(key=self._key, reverse=self._desc)
        groups: dict[int, list[Row]] = {}
        for row in new:
            groups.setdefault(self._bisect(row), []).append(row)
        for at in sorted(groups, reverse=True):  # back to front: earlier spots stay valid
            block = groups[at]
            self.beginInsertRows(QModelIndex(), at, at + len(block) - 1)
            self._rows[at:at] = block
            self.endInsertRows()

    def _remove_rows(self, positions: list[int]) -> None:
        for a, b in reversed(clusters(positions, gap=1)):
            self.beginRemoveRows(QModelIndex(), a, b)
            del self._rows[a : b + 1]
            self.endRemoveRows()

    def _trim(self) -> None:
        excess = len(self._rows) - self.max_rows
        if excess <= 0:
            return
        drop = max(excess, min(self.trim_chunk, len(self._rows)))
        victims: list[Row] = []
        for row in sorted(self._rows, key=lambda r: r.seq):  # oldest arrivals first
            if len(victims) >= drop:
                break
            if self.removable(row):
                victims.append(row)
        if not victims:
            return
        where = {id(r): i for i, r in enumerate(self._rows)}
        for row in victims:
            del self._by_key[row.key]
        self._remove_rows([where[id(r)] for r in victims])
        self.trimmed_total += len(victims)

    def remove_key(self, key: str) -> bool:
        self._pending.pop(key, None)
        row = self._by_key.pop(key, None)
        if row is None:
            return False
        self._remove_rows([self._pos(row)])
        return True

    def reset_rows(self, items: Iterable[tuple[str, Any]]) -> None:
        """Replace every row at once (initial load from a store)."""
        self._pending.clear()
        self.beginResetModel()
        rows: dict[str, Row] = {}
        for k, p in items:
            row = self.make_row(k, p)
            old = rows.get(k)
            if old is not None:
                row.seq = old.seq
            else:
                self._seq += 1
                row.seq = self._seq
            rows[k] = row
        self._by_key = rows
        self._rows = sorted(rows.values(), key=self._key, reverse=self._desc)
        self.endResetModel()
        self._trim()

    # -- reading ----------------------------------------------------------------------------------
    def row_at(self, i: int) -> Row:
        return self._rows[i]

    def row_of(self, key: str) -> int | None:
        row = self._by_key.get(key)
        return None if row is None else self._pos(row)

    def payload(self, key: str) -> Any:
        row = self._by_key.get(key)
        return None if row is None else row.payload

    def keys(self) -> list[str]:
        return [r.key for r in self._rows]

    # -- QAbstractTableModel ----------------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: AnyIndex, role: int = 0) -> Any:
        # Hot path: called ~7 times per visible cell per repaint. Plain ints, no enum lookups.
        if role == _DISPLAY:
            try:
                return self._rows[index.row()].cells[index.column()]
            except IndexError:
                return None
        if role == _FOREGROUND:
            try:
                return self._rows[index.row()].colors.get(index.column())
            except IndexError:
                return None
        if role == _ALIGN:
            return _ALIGN_RIGHT if index.column() in self.NUMERIC else _ALIGN_LEFT
        if role == _SORT:
            try:
                return self._rows[index.row()].sort[index.column()]
            except IndexError:
                return None
        if role == _FILTER:
            try:
                return self._rows[index.row()].filter_key
            except IndexError:
                return None
        if role == _PAYLOAD:
            try:
                return self._rows[index.row()].key
            except IndexError:
                return None
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            if 0 <= section < len(self.COLUMNS):
                return header_text(self.COLUMNS[section])
            return None
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Vertical:
            return str(section + 1)
        horizontal = orientation == Qt.Orientation.Horizontal
        if role == Qt.ItemDataRole.ToolTipRole and horizontal and 0 <= section < len(self.HEADER_TIPS):
            return self.HEADER_TIPS[section] or None
        return None

    # flags(): QAbstractTableModel's C++ default (enabled | selectable | never has children) is what
    # these read-only rows need; not overriding it saves a Python call per painted cell.


class RowFilterProxy(QSortFilterProxyModel):
    """Filters a :class:`RowTableModel` by a regular expression over each row's ``filter_key`` (in
    C++: a Python ``filterAcceptsRow`` costs ~2 µs x every row on each change) and leaves sorting
    to the source model: :meth:`sort` (the header click) re-orders the source by its precomputed
    keys, so this proxy never sorts through Python ``data()`` calls."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterRole(FILTER_ROLE)
        self.setFilterKeyColumn(0)
        self.setDynamicSortFilter(True)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        src = self.sourceModel()
        if isinstance(src, RowTableModel):
            src.sort(column, order)
            return
        super().sort(column, order)

    def source_row(self, proxy_row: int) -> Row | None:
        """The source :class:`Row` shown at ``proxy_row`` (None outside the proxy's rows)."""
        src = self.sourceModel()
        index = self.mapToSource(self.index(proxy_row, 0))
        if not isinstance(src, RowTableModel) or not index.isValid():
            return None
        return src.row_at(index.row())

    def source_key(self, proxy_row: int) -> str:
        src = self.mapToSource(self.index(proxy_row, 0))
        return str(self.sourceModel().data(src, PAYLOAD_ROLE))

    def payloads(self) -> list[Any]:
        """The payload of every row this proxy shows, in its order."""
        out = []
        for r in range(self.rowCount()):
            row = self.source_row(r)
            if row is not None:
                out.append(row.payload)
        return out
