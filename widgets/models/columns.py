"""Column-declared table models over rows that a service computes (the polled panels).

Services in Heron expose snapshots (``Reconciler.incidents``, ``StrategyRunner.infos()``,
``ShadowTracker.comparison()``) rather than per-row change events, so a panel refreshes by handing
the current rows to :meth:`KeyedTableModel.set_rows`. :class:`KeyedTableModel` is a
:class:`~widgets.models.table.RowTableModel` (the pushed panels' model) whose rows are built from
:class:`Column` declarations; ``set_rows`` diffs the snapshot against the rows held and pushes only
the difference: one ``beginRemoveRows`` per contiguous block of vanished keys, ``dataChanged`` over
the changed rows, one ``beginInsertRows`` for new keys. Unchanged rows cost nothing visible.

:class:`BoundedTableModel` is the append-only stream (the log, live predictions): it formats a cell
only when a view asks for it, because a burst of 100,000 log records must cost a few notifications
and no per-record formatting. GUI thread only.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor

from widgets.models.common import TIMES, header_text, shows_times
from widgets.models.table import SORT_ROLE, Row, RowTableModel

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole.value)


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
    """The read side of the bounded stream: ``_rows`` shown through ``_columns``, each cell formatted
    when a view asks for it. GUI thread only."""

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


class KeyedTableModel(RowTableModel, Generic[R]):
    """A :class:`RowTableModel` fed by polling: rows identified by ``key(row)``, cells declared by
    :class:`Column` s. See the module docstring. GUI thread only."""

    def __init__(
        self, columns: Sequence[Column[R]], key: Callable[[R], Hashable], parent: Any = None
    ) -> None:
        self._columns = list(columns)
        self.COLUMNS = tuple(c.title for c in self._columns)
        self.NUMERIC = frozenset(i for i, c in enumerate(self._columns) if c.numeric)
        super().__init__(parent, max_rows=sys.maxsize)
        self._row_key = key
        self._made: dict[str, Row] = {}

    @staticmethod
    def _text_key(key: Hashable) -> str:
        return key if isinstance(key, str) else repr(key)

    # -- rows -----------------------------------------------------------------------------------

    def make_row(self, key: str, payload: R) -> Row:
        made = self._made.pop(key, None)
        if made is not None:
            return made
        cells = [c.text(payload) for c in self._columns]
        sort = [c.sort(payload) if c.sort is not None else cells[i] for i, c in enumerate(self._columns)]
        colors: dict[int, QColor] = {}
        for i, c in enumerate(self._columns):
            color = c.foreground(payload) if c.foreground is not None else None
            if color:
                colors[i] = QColor(color)
        return Row(key, cells, sort, payload, colors)

    def set_rows(self, rows: Sequence[R]) -> None:
        """Make the model hold exactly ``rows`` (keys unique), with minimal notifications: one
        ``beginRemoveRows`` per block of vanished keys, ``dataChanged`` over the rows whose cells
        changed (rows may be service objects changed in place, so cells are compared, not rows),
        one ``beginInsertRows`` for new keys, at the end in the given order."""
        wanted: dict[str, R] = {}
        for r in rows:
            wanted[self._text_key(self._row_key(r))] = r
        gone = [k for k in self._by_key if k not in wanted]
        if gone:
            positions = [self._pos(self._by_key.pop(k)) for k in gone]
            self._remove_rows(sorted(positions))
        for k, r in wanted.items():
            row = self.make_row(k, r)
            old = self._by_key.get(k)
            if (
                old is None
                or (old.payload is not r and old.payload != r)
                or (old.cells, old.sort, old.colors) != (row.cells, row.sort, row.colors)
            ):
                self._made[k] = row
                self._pending[k] = r
            elif old.payload is not r:
                old.payload = r  # an equal object: keep the newest, nothing to show
        self.flush()

    def rows(self) -> list[R]:
        """The rows' service objects, in display order."""
        return [r.payload for r in self._rows]

    def payload_at(self, row: int) -> R:
        """The service object shown at ``row``."""
        return self._rows[row].payload

    def row_for_key(self, key: Hashable) -> int | None:
        return self.row_of(self._text_key(key))

    # -- the roles a Row does not cache ---------------------------------------------------------

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        return _header(self._columns, section, orientation, role)

    def data(self, index: Index, role: int = 0) -> Any:
        if role in (_TOOLTIP, _BACKGROUND):
            if not index.isValid() or index.row() >= len(self._rows) or index.column() >= len(self._columns):
                return None
            return _cell(self._columns[index.column()], self._rows[index.row()].payload, role)
        return super().data(index, role)


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
        if shows_times(self._columns):
            TIMES.changed.connect(self.retime)

    def retime(self) -> None:
        """The display zone changed: cells are formatted when asked, so the views only need telling."""
        self.touch()
        if self._columns:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self._columns) - 1)

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self.endResetModel()

    def touch(self, first: int = 0, last: int | None = None) -> None:
        """Rows are service objects that may change in place (a prediction gets scored): one
        ``dataChanged`` over rows ``first`` to ``last`` (default: all) tells the views."""
        last = len(self._rows) - 1 if last is None else min(last, len(self._rows) - 1)
        if self._rows and 0 <= first <= last:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self._columns) - 1))

    def bisect(self, value: Any, key: Callable[[R], Any]) -> int:
        """Where ``value`` is (or would go) among rows ordered by ``key``."""
        return bisect_left(self._rows, value, key=key)

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
        return header_text(col.title)
    if role == Qt.ItemDataRole.ToolTipRole and col.header_tip:
        return col.header_tip
    if role == Qt.ItemDataRole.TextAlignmentRole and col.numeric:
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return None
