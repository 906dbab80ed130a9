"""KeyedTableModel: a polled snapshot pushed into a RowTableModel as the difference only."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt

from widgets.models.columns import Column, KeyedTableModel
from widgets.models.table import SORT_ROLE, RowTableModel


@dataclass
class Item:
    name: str
    qty: int
    note: str = ""


COLUMNS = [
    Column("Name", lambda i: i.name),
    Column("Qty", lambda i: str(i.qty), sort=lambda i: i.qty, numeric=True,
           foreground=lambda i: "#ef5350" if i.qty < 0 else None),
    Column("Note", lambda i: i.note, tooltip=lambda i: f"about {i.name}",
           background=lambda i: "#4a1c1f" if i.note else None),
]  # fmt: skip


def model() -> KeyedTableModel[Item]:
    return KeyedTableModel(COLUMNS, key=lambda i: i.name)


def test_it_is_the_pushed_panels_model_with_declared_cells(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    m = model()
    assert isinstance(m, RowTableModel)
    m.set_rows([Item("a", 1), Item("b", -2, "late")])
    assert [m.data(m.index(r, 0)) for r in range(2)] == ["a", "b"]
    assert m.data(m.index(1, 1), SORT_ROLE) == -2
    assert m.data(m.index(1, 1), Qt.ItemDataRole.ForegroundRole) is not None
    assert m.data(m.index(0, 1), Qt.ItemDataRole.ForegroundRole) is None
    assert m.data(m.index(1, 2), Qt.ItemDataRole.ToolTipRole) == "about b"
    assert m.data(m.index(1, 2), Qt.ItemDataRole.BackgroundRole) is not None
    assert m.data(m.index(0, 2), Qt.ItemDataRole.BackgroundRole) is None
    assert m.headerData(1, Qt.Orientation.Horizontal) == "Qty"
    qtmodeltester.check(m, force_py=True)


def test_set_rows_notifies_only_the_difference() -> None:
    m = model()
    m.set_rows([Item("a", 1), Item("b", 2), Item("c", 3), Item("d", 4)])
    removed: list[tuple[int, int]] = []
    changed: list[tuple[int, int]] = []
    inserted: list[tuple[int, int]] = []
    m.rowsAboutToBeRemoved.connect(lambda _p, a, z: removed.append((a, z)))
    m.dataChanged.connect(lambda a, z, *_: changed.append((a.row(), z.row())))
    m.rowsInserted.connect(lambda _p, a, z: inserted.append((a, z)))

    m.set_rows([Item("a", 1), Item("d", 40), Item("e", 5)])  # b, c gone; d changed; e new
    assert removed == [(1, 2)]
    assert changed == [(1, 1)]
    assert inserted == [(2, 2)]
    assert [i.name for i in m.rows()] == ["a", "d", "e"]
    assert m.row_for_key("e") == 2 and m.payload_at(1).qty == 40

    for seen in (removed, changed, inserted):
        seen.clear()
    m.set_rows([Item("a", 1), Item("d", 40), Item("e", 5)])  # equal rows: nothing to say
    assert (removed, changed, inserted) == ([], [], [])


def test_an_object_changed_in_place_is_noticed() -> None:
    m = model()
    item = Item("a", 1)
    m.set_rows([item])
    changed: list[int] = []
    m.dataChanged.connect(lambda a, *_: changed.append(a.row()))
    item.qty = 7  # a service object updated where it lives, handed over again
    m.set_rows([item])
    assert changed == [0] and m.data(m.index(0, 1)) == "7"


def test_keys_need_not_be_strings() -> None:
    m: KeyedTableModel[tuple[int, str]] = KeyedTableModel(
        [Column("Text", lambda r: r[1])], key=lambda r: (r[0], "v1")
    )
    m.set_rows([(1, "x"), (2, "y")])
    assert m.row_for_key((2, "v1")) == 1 and m.row_for_key((3, "v1")) is None
    m.set_rows([(2, "y")])
    assert m.rows() == [(2, "y")]
