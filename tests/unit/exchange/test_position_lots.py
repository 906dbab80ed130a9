"""The exchange's positions priced as Alpaca prices them.

Source for the average price: Alpaca docs, "Position Average Entry Price Calculation"
(docs.alpaca.markets/docs/position-average-entry-price-calculation): weighted average for intraday
trades, compressed FIFO for positions from previous trading days. Its worked examples are encoded
here with their figures. Realized P&L follows the same lots (docs/alpaca-rules.md [AVG]).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from services.exchange.contracts import NBBO, Instrument
from services.exchange.ledger import Holding, Ledger
from services.exchange.store import VenueStore

D = Decimal
# trading days: New York dates (15:00 UTC is mid-session in New York)
DAY1 = datetime(2025, 3, 3, 15, tzinfo=UTC)
DAY2 = datetime(2025, 3, 4, 15, tzinfo=UTC)
DAY3 = datetime(2025, 3, 5, 15, tzinfo=UTC)
DAY4 = date(2025, 3, 6)
INST = Instrument("X", "us_equity", "NYSE", "X", D(10), D("0.01"))


def nbbo(last: str, prev: str) -> NBBO:
    p = D(last)
    return NBBO("X", p, p, D(1), D(1), p, datetime(2025, 3, 5, 15, tzinfo=UTC), D(prev))


def docs_example_1(led: Ledger, buy: str = "buy", sell: str = "sell") -> None:
    """Day 1: buy 100 @ 10 and 50 @ 12; day 2: buy 30 @ 15; day 3: sell 120 (at 20 here)."""
    led.apply_fill("X", buy, D(100), D(10), at=DAY1)
    led.apply_fill("X", buy, D(50), D(12), at=DAY1)
    led.apply_fill("X", buy, D(30), D(15), at=DAY2)
    led.apply_fill("X", sell, D(120), D(20), at=DAY3)


def test_compressed_fifo_example_1_from_the_next_day_weighted_average_on_the_day() -> None:
    """Alpaca docs, "Position Average Entry Price Calculation", Compressed FIFO Example 1 and the
    Weighted Average example: after the day-3 sell the cost basis is 770 and the average 12.83 under
    compressed FIFO (day 1's 150 shares at 10.67 are sold first), 683.33 / 11.39 under the weighted
    average. Weighted average is what Alpaca uses intraday, compressed FIFO from the next day."""
    led = Ledger(account_id="a", cash=D(100_000))
    docs_example_1(led)
    h = led.positions["X"]
    assert h.qty == 60
    assert round(h.cost_basis, 2) == D("683.33") and round(h.avg_entry_price, 2) == D("11.39")
    # realized P&L against the intraday weighted average: 120 x (20 - 2050 / 180)
    assert round(h.realized_pl, 2) == D("1033.33")
    nxt = h.as_of(DAY4)  # what GET /v2/positions shows on day 4, before any new fill
    assert nxt.cost_basis == 770 and round(nxt.avg_entry_price, 2) == D("12.83")
    assert nxt.realized_pl == 1120  # 2,400 received - 1,280 paid for the FIFO shares sold
    j = led.position_json(h, INST, nbbo("20", "19"), D(60), today=DAY4)
    assert j["cost_basis"] == "770" and j["avg_entry_price"].startswith("12.8333333")
    assert j["unrealized_pl"] == "430"  # 60 x 20 - 770
    # a fill on day 4 rolls the holding itself; the figures then hold for good
    led.apply_fill("X", "buy", D(1), D(20), at=datetime(2025, 3, 6, 15, tzinfo=UTC))
    assert h.lots == [(D(30), D(320)), (D(30), D(450))]  # what is left of day 1, then day 2
    assert h.realized_pl == 1120 and h.cost_basis == 790
    # cash: what the fills paid and received, whatever the method
    assert led.cash == D(100_000) - 2050 + 2400 - 20


def test_compressed_fifo_example_2_compresses_the_day_before_taking_the_sell() -> None:
    """Alpaca docs, Compressed FIFO Example 2: day 1 buy 100 @ 10, 50 @ 9, sell 50, buy 50 @ 11;
    at the end of day 1 the cost basis is 2000 - 50 x 2000 / 200 = 1,500 and the average 10."""
    led = Ledger(account_id="a", cash=D(100_000))
    led.apply_fill("X", "buy", D(100), D(10), at=DAY1)
    led.apply_fill("X", "buy", D(50), D(9), at=DAY1)
    led.apply_fill("X", "sell", D(50), D(10), at=DAY1)
    led.apply_fill("X", "buy", D(50), D(11), at=DAY1)
    h = led.positions["X"]
    # intraday, the weighted average: (100 x 10 + 50 x 9) / 150 = 9.667, then 50 @ 11 blended in
    assert round(h.avg_entry_price, 3) == D("10.111")
    nxt = h.as_of(DAY2.date())
    assert nxt.qty == 150 and nxt.cost_basis == 1500 and nxt.avg_entry_price == 10
    # realized P&L restated on the lots: sold 50 at 10 against the compressed 10
    assert nxt.realized_pl == 0


def test_compressed_fifo_for_a_short_is_the_mirror_image() -> None:
    """The same example sold short and bought back: the lots, the average and the realized P&L
    mirror the long case (Alpaca reports a short's cost basis negative)."""
    led = Ledger(account_id="a", cash=D(100_000))
    docs_example_1(led, buy="sell", sell="buy")
    h = led.positions["X"]
    assert h.qty == -60 and round(h.avg_entry_price, 2) == D("11.39")
    nxt = h.as_of(DAY4)
    assert nxt.cost == -770 and round(nxt.avg_entry_price, 2) == D("12.83")
    assert nxt.realized_pl == -1120  # bought back at 20 what was sold at 10.67 on average
    j = led.position_json(h, INST, nbbo("20", "19"), D(60), today=DAY4)
    assert j["side"] == "short" and j["cost_basis"] == "-770" and j["unrealized_pl"] == "-430"


def test_a_fill_through_zero_closes_at_the_average_and_opens_the_rest_at_its_price() -> None:
    led = Ledger(account_id="a", cash=D(100_000))
    led.apply_fill("X", "buy", D(100), D(10), at=DAY1)
    led.apply_fill("X", "sell", D(150), D(12), at=DAY2)
    h = led.positions["X"]
    assert h.qty == -50 and h.avg_entry_price == 12 and h.realized_pl == 200
    nxt = h.as_of(DAY3.date())
    assert nxt.cost == -600 and nxt.realized_pl == 200 and nxt.lots == [(D(-50), D(-600))]


def test_intraday_pl_of_shares_added_today_is_measured_from_their_entry() -> None:
    """docs/alpaca-rules.md (Positions): ``unrealized_intraday_pl`` of shares bought today is measured
    from their entry, not from the previous close. Carried 10 @ 30, closed yesterday at 35.89, 5
    more bought today at 35, now 36.28: 10 x 0.39 + 5 x 1.28 = 10.30 (not 15 x 0.39 = 5.85)."""
    led = Ledger(account_id="a", cash=D(100_000))
    led.apply_fill("X", "buy", D(10), D(30), at=DAY1)
    led.apply_fill("X", "buy", D(5), D(35), at=DAY2)
    today = DAY2.date()
    j = led.position_json(led.positions["X"], INST, nbbo("36.28", "35.89"), D(15), today=today)
    assert j["unrealized_intraday_pl"] == "10.3"
    # base: the carried shares at yesterday's close plus what today's shares cost
    assert D(j["unrealized_intraday_plpc"]) == round(D("10.3") / (D("358.9") + 175), 9)
    # the day's sells take the carried shares first: sell 4, so 6 carried and 5 of today's remain
    led.apply_fill("X", "sell", D(4), D(36), at=DAY2)
    j = led.position_json(led.positions["X"], INST, nbbo("36.28", "35.89"), D(11), today=today)
    assert j["unrealized_intraday_pl"] == str(6 * D("0.39") + 5 * D("1.28"))
    # the next day every share is carried: measured from that day's previous close
    j = led.position_json(led.positions["X"], INST, nbbo("36.50", "36.28"), D(11), today=DAY3.date())
    assert j["unrealized_intraday_pl"] == str(11 * D("0.22"))


def test_intraday_pl_of_a_position_opened_today_is_its_unrealized_pl() -> None:
    """Bought today at 36.02, now 36.28, closed yesterday at 35.89: +0.26 a share for the day."""
    led = Ledger(account_id="a", cash=D(100_000))
    led.apply_fill("X", "buy", D(22), D("36.02"), at=DAY2)
    j = led.position_json(led.positions["X"], INST, nbbo("36.28", "35.89"), D(22), today=DAY2.date())
    assert j["unrealized_pl"] == j["unrealized_intraday_pl"] == "5.72"
    assert j["unrealized_intraday_plpc"] == j["unrealized_plpc"]


def test_intraday_pl_of_a_position_flipped_today_is_measured_from_the_flip() -> None:
    """Long 3 yesterday, sold 5 today at 12: the 2 short shares were opened today at 12, so the
    day's P&L at 11.50 is +1.00, whatever yesterday's close was."""
    led = Ledger(account_id="a", cash=D(100_000))
    led.apply_fill("X", "buy", D(3), D(10), at=DAY1)
    led.apply_fill("X", "sell", D(5), D(12), at=DAY2)
    j = led.position_json(led.positions["X"], INST, nbbo("11.50", "10.50"), D(2), today=DAY2.date())
    assert j["qty"] == "-2" and j["unrealized_intraday_pl"] == j["unrealized_pl"] == "1"


def test_lots_survive_a_restart_of_the_exchange(tmp_path: Path) -> None:
    """The store keeps the lots: after a restart the next day still shows the compressed figures."""
    led = Ledger(account_id="a", cash=D(100_000))
    docs_example_1(led)
    store = VenueStore(tmp_path)
    store.write(positions={"X": led.positions["X"]})
    store.close()
    store = VenueStore(tmp_path)
    [back] = store.load().positions
    store.close()
    assert back.qty == 60 and round(back.avg_entry_price, 2) == D("11.39")
    nxt = back.as_of(DAY4)
    assert nxt.cost_basis == 770 and nxt.realized_pl == 1120


def test_a_position_stored_without_lots_is_one_carried_lot(tmp_path: Path) -> None:
    """A file written before lots were kept: its position is one lot at its stored average."""
    import sqlite3

    with sqlite3.connect(tmp_path / "venue.sqlite3") as db:
        db.execute(
            "CREATE TABLE positions "
            "(symbol TEXT PRIMARY KEY, qty TEXT NOT NULL, avg_entry_price TEXT NOT NULL)"
        )
        db.execute("INSERT INTO positions VALUES ('X', '10', '12.5')")
    store = VenueStore(tmp_path)
    [h] = store.load().positions
    store.close()
    assert h.lots == [(D(10), D(125))] and h.cost_basis == 125
    h.apply("sell", D(4), D(15), DAY1.date())
    assert h.realized_pl == 10 and h.as_of(DAY2.date()).lots == [(D(6), D(75))]


def test_holding_from_quantity_and_average_alone() -> None:
    h = Holding("X", D(-4), D(50))
    assert h.cost == -200 and h.cost_basis == 200 and h.lots == [(D(-4), D(-200))]
