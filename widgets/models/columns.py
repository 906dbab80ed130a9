"""Column-declared table models over rows that a service computes (the polled panels).

Services in Heron expose snapshots (``Reconciler.incidents``, ``StrategyRunner.infos()``,
``ShadowTracker.comparison()``) rather than per-row change events, so a panel refreshes by handing
the current rows to :meth:`KeyedTableModel.set_rows`. The model maps the difference onto the
minimal Qt notifications: one ``beginRemoveRows`` per contiguous block of vanished keys, one
``dataChanged`` spanning the changed rows, one ``beginInsertRows`` for new keys. Unchanged rows
cost nothing visible. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor

from widgets.models.table import SORT_ROLE

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column(Generic[R]):
    """One column: ``text`` renders the cell; the others are optional decorations."""

    title: str
    text: Callable[[R], str]
    sort: Callable[[R], Any] | None = None
    numeric: bool = False
    tooltip: Callable[[R], str | None] | None = None
    foreground: Callable[[R], str | None] | None = None
    background: Callable[[R], str | None] | None = None
    header_tip: str = ""


class _ColumnTableModel(QAbstractTableModel, Generic[R]):
    """The read side both tables share: ``_rows`` shown through ``_columns``. GUI thread only."""

    _columns: list[Column[R]]
    _rows: list[R]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        return _header(self._columns, section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows) or index.column() >= len(self._columns):
            return None
        return _cell(self._columns[index.column()], self._rows[index.row()], role)

    def rows(self) -> list[R]:
        return list(self._rows)

    def row_at(self, row: int) -> R:
        return self._rows[row]


class KeyedTableModel(_ColumnTableModel[R]):
    """Rows identified by ``key(row)``; see the module docstring. GUI thread only."""

    def __init__(
        self, columns: Sequence[Column[R]], key: Callable[[R], Hashable], parent: Any = None
    ) -> None:
        super().__init__(parent)
        self._columns = list(columns)
        self._key = key
        self._rows: list[R] = []
        self._index: dict[Hashable, int] = {}

    # -- rows -----------------------------------------------------------------------------------

    def row_for_key(self, key: Hashable) -> int | None:
        return self._index.get(key)

    def set_rows(self, rows: Sequence[R]) -> None:
        """Make the model hold exactly ``rows`` (keys unique), with minimal notifications."""
        wanted: dict[Hashable, R] = {}
        for r in rows:
            wanted[self._key(r)] = r
        # 1. removals, bottom-up in contiguous blocks
        gone = sorted((i for k, i in self._index.items() if k not in wanted), reverse=True)
        while gone:
            last = gone.pop(0)
            first = last
            while gone and gone[0] == first - 1:
                first = gone.pop(0)
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        self._reindex()
        # 2. in-place changes, one dataChanged over the changed span
        lo, hi = -1, -1
        for i, old in enumerate(self._rows):
            new = wanted[self._key(old)]
            if new != old:
                self._rows[i] = new
                lo = i if lo < 0 else lo
                hi = i
        if lo >= 0:
            self.dataChanged.emit(self.index(lo, 0), self.index(hi, len(self._columns) - 1))
        # 3. insertions at the end, in the given order
        fresh = [r for k, r in wanted.items() if k not in self._index]
        if fresh:
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
            self._rows.extend(fresh)
            self.endInsertRows()
            self._reindex()

    def _reindex(self) -> None:
        self._index = {self._key(r): i for i, r in enumerate(self._rows)}


class BoundedTableModel(_ColumnTableModel[R]):
    """An append-only table keeping the newest ``capacity`` rows (live predictions, trades).

    :meth:`extend` appends a batch with one insert and trims the oldest rows with one remove, so
    the cost per batch does not depend on how many rows are held. GUI thread only.
    """

    def __init__(self, columns: Sequence[Column[R]], capacity: int, parent: Any = None) -> None:
        super().__init__(parent)
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._columns = list(columns)
        self.capacity = capacity
        self._rows: list[R] = []


    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self.endResetModel()

    def touch(self) -> None:
        """Rows are service objects that may change in place (a prediction gets scored): one
        ``dataChanged`` over all rows tells the views."""
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self._columns) - 1))

    def extend(self, batch: Sequence[R]) -> None:
        if not batch:
            return
        batch = list(batch)[-self.capacity :]
        overflow = len(self._rows) + len(batch) - self.capacity
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self._rows[:overflow]
            self.endRemoveRows()
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(batch) - 1)
        self._rows.extend(batch)
        self.endInsertRows()


def refilter(proxy: QSortFilterProxyModel, change: Callable[[], None]) -> None:
    """Apply ``change`` to a proxy's filter state and re-filter (Qt 6.10 replaced invalidateFilter)."""
    proxy.beginFilterChange()
    change()
    proxy.endFilterChange()


def _cell(col: Column[Any], row: Any, role: int) -> Any:
    if role == Qt.ItemDataRole.DisplayRole:
        return col.text(row)
    if role == SORT_ROLE:
        return col.sort(row) if col.sort is not None else col.text(row)
    if role == Qt.ItemDataRole.TextAlignmentRole:
        flags = Qt.AlignmentFlag.AlignRight if col.numeric else Qt.AlignmentFlag.AlignLeft
        return int(flags | Qt.AlignmentFlag.AlignVCenter)
    if role == Qt.ItemDataRole.ToolTipRole and col.tooltip is not None:
        return col.tooltip(row)
    if role == Qt.ItemDataRole.ForegroundRole and col.foreground is not None:
        color = col.foreground(row)
        return QBrush(QColor(color)) if color else None
    if role == Qt.ItemDataRole.BackgroundRole and col.background is not None:
        color = col.background(row)
        return QBrush(QColor(color)) if color else None
    return None


def _header(columns: Sequence[Column[Any]], section: int, orientation: Qt.Orientation, role: int) -> Any:
    if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(columns):
        return None
    col = columns[section]
    if role == Qt.ItemDataRole.DisplayRole:
        return col.title
    if role == Qt.ItemDataRole.ToolTipRole and col.header_tip:
        return col.header_tip
    if role == Qt.ItemDataRole.TextAlignmentRole and col.numeric:
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return None

