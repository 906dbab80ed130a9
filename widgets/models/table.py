"""``RowTableModel``: a keyed, bounded, frame-coalesced QAbstractTableModel.

Service events are *staged* (latest payload per key wins) and applied by :meth:`flush`, at most
once per frame (a single-shot QTimer, ~30 Hz): existing rows are mutated in place, new rows are
inserted with one ``beginInsertRows`` at the end, and ``dataChanged`` is emitted once per flush for
each cluster of nearby changed rows. Clustering, not one min..max span, because a
``QSortFilterProxyModel`` re-examines every source row inside a ``dataChanged`` range: two updates
at rows 3 and 99,000 must not make it walk 99,000 rows.

Rows beyond ``max_rows`` are trimmed from the oldest end (only rows :meth:`removable` allows), in
chunks, so the index rebuild is rare. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QColor

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
FILTER_ROLE = Qt.ItemDataRole.UserRole + 2
PAYLOAD_ROLE = Qt.ItemDataRole.UserRole + 3
FRAME_MS = 33
#: changed rows closer than this are covered by one dataChanged range
CLUSTER_GAP = 32

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
    #: laid-out cell texts, built by the view on first paint (see ``row_view.static_texts``)
    static: list[Any] | None = None
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


class RowTableModel(QAbstractTableModel):
    """Subclasses define :attr:`COLUMNS`, :attr:`NUMERIC` and :meth:`make_row`."""

    COLUMNS: Sequence[str] = ()
    NUMERIC: frozenset[int] = frozenset()

    def __init__(self, parent: QObject | None = None, *, max_rows: int = 5_000, trim_chunk: int = 0) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}
        self._pending: dict[str, Any] = {}
        self.max_rows = max_rows
        self.trim_chunk = trim_chunk or max(1, max_rows // 10)
        self.trimmed_total = 0
        self.flushes = 0
        self.data_changed_emits = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self.flush)

    # -- subclass hooks ---------------------------------------------------------------------------
    def make_row(self, key: str, payload: Any) -> Row:  # pragma: no cover - abstract
        raise NotImplementedError

    def removable(self, row: Row) -> bool:
        """Whether the trimmer may drop ``row`` (e.g. only closed orders)."""
        return True

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
        new: list[Row] = []
        rows, index = self._rows, self._index
        for key, payload in pending.items():
            row = self.make_row(key, payload)
            i = index.get(key)
            if i is None:
                new.append(row)
            else:
                rows[i] = row
                changed.append(i)
        if new:
            first = len(rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for n, row in enumerate(new, first):
                rows.append(row)
                index[row.key] = n
            self.endInsertRows()
        if changed:
            last_col = len(self.COLUMNS) - 1
            for a, b in clusters(changed):
                # createIndex, not index(): index() re-enters Python (hasIndex -> rowCount and
                # columnCount overrides) for rows we know are valid
                self.dataChanged.emit(self.createIndex(a, 0), self.createIndex(b, last_col))
                self.data_changed_emits += 1
        self.flushes += 1
        self._trim()
        return len(changed) + len(new)

    def _trim(self) -> None:
        excess = len(self._rows) - self.max_rows
        if excess <= 0:
            return
        drop = max(excess, min(self.trim_chunk, len(self._rows)))
        victims: list[int] = []
        for i, row in enumerate(self._rows):
            if len(victims) >= drop:
                break
            if self.removable(row):
                victims.append(i)
        if not victims:
            return
        # remove contiguous runs from the back so earlier indices stay valid
        for a, b in reversed(clusters(victims, gap=1)):
            self.beginRemoveRows(QModelIndex(), a, b)
            del self._rows[a : b + 1]
            self.endRemoveRows()
        self._index = {row.key: i for i, row in enumerate(self._rows)}
        self.trimmed_total += len(victims)

    def remove_key(self, key: str) -> bool:
        self._pending.pop(key, None)
        i = self._index.get(key)
        if i is None:
            return False
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._rows[i]
        self.endRemoveRows()
        self._index = {row.key: n for n, row in enumerate(self._rows)}
        return True

    def reset_rows(self, items: Iterable[tuple[str, Any]]) -> None:
        """Replace every row at once (initial load from a store)."""
        self._pending.clear()
        self.beginResetModel()
        self._rows = [self.make_row(k, p) for k, p in items]
        self._index = {row.key: i for i, row in enumerate(self._rows)}
        self.endResetModel()
        self._trim()

    # -- reading ----------------------------------------------------------------------------------
    def row_at(self, i: int) -> Row:
        return self._rows[i]

    def row_of(self, key: str) -> int | None:
        return self._index.get(key)

    def payload(self, key: str) -> Any:
        i = self._index.get(key)
        return None if i is None else self._rows[i].payload

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
                return self.COLUMNS[section]
            return None
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Vertical:
            return str(section + 1)
        return None

    # flags(): QAbstractTableModel's C++ default (enabled | selectable | never has children) is what
    # these read-only rows need; not overriding it saves a Python call per painted cell.
