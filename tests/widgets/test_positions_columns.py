"""Positions: the day P&L column has the account's meaning (today's change against the last close)
and every header fits its column, with a tooltip saying what it means.

Alpaca's definitions (alpaca-py ``Position``, from Alpaca's Trading API reference):
``unrealized_intraday_pl`` "Unrealized profit/loss in dollars for the day", ``lastday_price`` "Last
day's asset price per share based on the closing value of the last trading day",
``current_price``; the account's ``last_equity`` is the equity at the last close. Shares bought today
count from their entry (docs/alpaca-rules.md, "Positions, shorting, buying power").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from PySide6.QtCore import Qt

from services.domain.events import PositionsEvent
from services.domain.models import Position
from tests.widgets import trading_rig
from tests.widgets.test_positions import buy
from tests.widgets.trading_rig import Rig
from widgets.models.positions_model import PositionsTableModel, day_pl
from widgets.positions import PositionsPanel

qloop = trading_rig.qloop
rig = trading_rig.rig
T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
DAY = PositionsTableModel.COLUMNS.index("Day P&L")


def report(qty: str, current: str, intraday: str) -> Position:
    """A broker position held overnight: bought at 90, closed yesterday at 100."""
    q = Decimal(qty)
    return Position("AAPL", q, Decimal(90), q * 90, q * Decimal(current), Decimal(current), Decimal(100),
                    q * (Decimal(current) - 90), Decimal(intraday))  # fmt: skip


def test_day_pl_is_the_broker_s_intraday_figure_re_marked_at_the_last_price() -> None:
    # held overnight, no trade today: the day's change is qty x (price - last close), which is also
    # what the account's equity - last_equity moved by
    assert day_pl(Decimal(10), Decimal(105), report("10", "105", "50")) == Decimal(50)
    assert day_pl(Decimal(10), Decimal("106.5"), report("10", "105", "50")) == Decimal(65)
    assert day_pl(Decimal(-10), Decimal(106), report("-10", "105", "-50")) == Decimal(-60)
    assert day_pl(Decimal(10), None, report("10", "105", "50")) == Decimal(50)
    # no report, or a fill since the report: nothing to show rather than a wrong number
    assert day_pl(Decimal(10), Decimal(105), None) is None
    assert day_pl(Decimal(15), Decimal(105), report("10", "105", "50")) is None


def test_panel_day_pl_follows_reports_and_marks(qtbot, qtmodeltester, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus)
    qtbot.addWidget(p)
    buy(rig, qloop, "10", "100")
    qtbot.waitUntil(lambda: p.model.rowCount() == 1, timeout=1000)
    rig.trade("AAPL", "101")
    rig.bus.publish(PositionsEvent(T0, (report("10", "101", "10"),)))
    p.model.flush()
    assert p.model.row_at(0).cells[DAY] == "+10.00"
    rig.trade("AAPL", "102.25")
    p.refresh()
    assert p.model.row_at(0).cells[DAY] == "+22.50"
    qtmodeltester.check(p.model)


def test_every_header_fits_and_explains_itself(qtbot) -> None:  # type: ignore[no-untyped-def]
    p = PositionsPanel(_NoPositions(), _NoMarks())
    qtbot.addWidget(p)
    p.show()
    header = p.view.horizontalHeader()
    metrics = header.fontMetrics()
    for c, title in enumerate(PositionsTableModel.COLUMNS):
        assert header.sectionSize(c) >= header.sectionSizeHint(c), title
        assert header.sectionSize(c) >= metrics.horizontalAdvance(title), title
    tips = [p.model.headerData(c, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole) for c in range(8)]
    assert all(tips[1:]) and "last close" in tips[DAY] and "equity" in tips[DAY]


class _NoPositions:
    def __init__(self) -> None:
        self.positions: dict[str, object] = {}

    def unrealized(self, symbol: str) -> Decimal | None:
        return None


class _NoMarks:
    def last_price(self, symbol: str) -> Decimal | None:
        return None
