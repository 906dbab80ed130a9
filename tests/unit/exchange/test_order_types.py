"""Order types as Alpaca works them: bracket/OCO exit legs, stop election on prints, the buy-stop
collar, trailing stops and the time-in-force rules of trailing and OPG orders.

Sources (read on docs.alpaca.markets "Orders at Alpaca" / "Placing Orders", abbreviated [ORD]):
- bracket: "The second and third orders won't be active until the first order is completely
  filled"; "If the take-profit order is partially filled, the stop-loss order will be adjusted to
  the remaining quantity"; OCO legs "work exactly the same way as the two legs of the bracket
  orders", both legs on the same side, exit only [ORD "Bracket Orders", "OCO Orders"].
- after the entry fills the take-profit is ``new`` and the stop-loss ``held`` until needed
  (alpaca-trade-api-js #87, alpaca-trade-api-python #322, alpaca-py #198).
- stops are elected by a print: "This print elected your stop order ... could not officially be
  elected until the stock traded at or below 69.00" (Alpaca's answer on forum.alpaca.markets
  t/5940, "Sell stop order was not filled after halt").
- "Alpaca converts buy stop orders into stop limit orders with a limit price that is 4% higher than
  a stop price < $50 (or 2.5% higher than a stop price >= $50). Sell stop orders are not converted
  into stop limit orders." [ORD "Stop Orders"].
- trailing stops track the highest (sell) / lowest (buy) price since submission; "Valid
  time-in-force values for trailing stop are day and gtc" [ORD "Trailing Stop Orders"].
- "OPG orders submitted after 9:28am but before 7:00pm ET will be rejected. OPG orders submitted
  after 7:00pm will be queued and routed to the following day's opening auction."
  [ORD "Time in Force"].
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.domain.calendar import MarketCalendar
from services.exchange.errors import ApiError
from services.exchange.http.entities import order_json, trade_update_json
from services.exchange.http.order_requests import submit_json
from services.exchange.market.history import HistoryGenerator
from services.exchange.market.simulator import MarketSimulator
from services.exchange.market.universe import build_universe
from services.exchange.orders import VenueOrder
from tests.support.clock import ManualClock

from .test_venue_fakes import T0, Rig, make_rig


def order(r: Rig, **body: Any) -> VenueOrder:
    base: dict[str, Any] = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}
    base.update(body)
    base.setdefault("qty", 10)
    o: VenueOrder = r.venue.run(lambda: submit_json(r.venue.engine, base))
    r.venue.match_pending()  # what the loop does right after the answer (see test_async_fills.py)
    return o


def reject(r: Rig, **body: Any) -> ApiError:
    with pytest.raises(ApiError) as ei:
        order(r, **body)
    return ei.value


def updates(r: Rig) -> list[tuple[str, str]]:
    """(event, order id) of every trade update published so far."""
    return [(u["event"], u["order"]["id"]) for u in r.venue.hub_log]  # type: ignore[attr-defined]


@pytest.fixture
def r(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path, seed=12345)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no random partials
    log: list[dict[str, Any]] = []
    rig.venue.hub.publish = lambda u: log.append(trade_update_json(u))  # type: ignore[method-assign]
    rig.venue.hub_log = log  # type: ignore[attr-defined]
    return rig


def partial_next(r: Rig, qty: int) -> None:
    """The next eligible fill is a partial fill of ``qty`` shares, later ones are whole."""
    draws = iter([0.05])
    r.venue.engine.rng.random = lambda: next(draws, 0.99)  # type: ignore[method-assign]
    r.venue.engine.rng.randint = lambda a, b: qty  # type: ignore[method-assign]


def legs(r: Rig, p: VenueOrder) -> list[VenueOrder]:
    return [r.venue.engine.orders[i] for i in p.leg_ids]


def filled_bracket(r: Rig, *, sl_limit: float | None = None) -> tuple[VenueOrder, VenueOrder, VenueOrder]:
    stop_loss: dict[str, Any] = {"stop_price": 95.0}
    if sl_limit is not None:
        stop_loss["limit_price"] = sl_limit
    p = order(
        r, qty=5, time_in_force="gtc", order_class="bracket",
        take_profit={"limit_price": 110.0}, stop_loss=stop_loss,
    )  # fmt: skip
    tp, sl = legs(r, p)
    return p, tp, sl


# ---- brackets and OCO ----------------------------------------------------------------------------
def test_after_the_entry_fills_the_take_profit_is_new_and_the_stop_loss_held(r: Rig) -> None:
    """alpaca-trade-api-js #87, alpaca-py #198: entry filled, take-profit new, stop-loss held."""
    p, tp, sl = filled_bracket(r)
    assert p.status == "filled"
    assert (tp.status, sl.status) == ("new", "held")
    assert ("new", tp.id) in updates(r) and ("new", sl.id) not in updates(r)
    # the held leg does not trade on a quote through its stop: only a print elects it
    r.quote("AAPL", "94.00", "94.02")
    assert sl.status == "held" and sl.filled_qty == 0
    # the position's shares are claimed once by the pair
    assert r.venue.engine.held_for_orders("AAPL", "sell") == 5


def test_the_held_stop_loss_activates_when_a_print_elects_it(r: Rig) -> None:
    """[ORD "Bracket Orders"]: only one exit executes; the stop-loss acts when its stop is elected
    (forum.alpaca.markets t/5940: a print elects the stop)."""
    _, tp, sl = filled_bracket(r)
    r.quote("AAPL", "94.98", "95.00")
    r.trade("AAPL", "94.99")
    assert sl.status == "filled" and sl.filled_avg_price == Decimal("94.98")
    assert tp.status == "canceled"
    assert "AAPL" not in r.venue.ledger.positions
    ev = updates(r)
    assert ev.index(("canceled", tp.id)) < ev.index(("new", sl.id)) < ev.index(("fill", sl.id))


def test_a_partial_take_profit_fill_shrinks_the_stop_loss_instead_of_canceling_it(r: Rig) -> None:
    """[ORD "Bracket Orders"]: "If the take-profit order is partially filled, the stop-loss order
    will be adjusted to the remaining quantity"."""
    _, tp, sl = filled_bracket(r)
    partial_next(r, 2)
    r.quote("AAPL", "110.00", "110.02")
    assert tp.status == "partially_filled" and tp.filled_qty == 2
    assert sl.status == "held" and sl.qty == 3
    assert order_json(r.venue.engine, sl)["qty"] == "3"
    assert r.venue.engine.held_for_orders("AAPL", "sell") == 3
    # the market falls back: the stop-loss sells the remaining three shares
    r.quote("AAPL", "94.50", "94.52")
    r.trade("AAPL", "94.50")
    assert tp.status == "canceled" and sl.status == "filled" and sl.filled_qty == 3
    assert "AAPL" not in r.venue.ledger.positions


def test_a_full_take_profit_fill_cancels_the_held_stop_loss(r: Rig) -> None:
    """[ORD "Bracket Orders"]: "Once one of the exit orders is filled, the other is canceled"."""
    _, tp, sl = filled_bracket(r)
    r.quote("AAPL", "110.00", "110.02")
    assert tp.status == "filled" and sl.status == "canceled"
    assert ("canceled", sl.id) in updates(r)


def test_oco_legs_work_the_same_way(r: Rig) -> None:
    """[ORD "OCO Orders"]: same side, exit only, "work exactly the same way as the two legs of the
    bracket orders": the stop-loss is held and shrinks with a partial take-profit fill."""
    order(r, qty=10)
    p = order(
        r, side="sell", type="limit", time_in_force="gtc", order_class="oco",
        take_profit={"limit_price": 105.0}, stop_loss={"stop_price": 95.0},
    )  # fmt: skip
    (sl,) = legs(r, p)
    assert p.side == sl.side == "sell"
    assert (p.status, sl.status) == ("new", "held")
    partial_next(r, 4)
    r.quote("AAPL", "105.00", "105.02")
    assert p.status == "partially_filled" and sl.status == "held" and sl.qty == 6
    r.quote("AAPL", "94.90", "94.95")
    assert sl.status == "held"  # a quote through the stop is not a print
    r.trade("AAPL", "94.92")
    assert p.status == "canceled" and sl.status == "filled" and sl.filled_qty == 6
    assert "AAPL" not in r.venue.ledger.positions


# ---- stop election and the collar ---------------------------------------------------------------
def test_a_stop_is_elected_by_a_print_not_by_the_quote(r: Rig) -> None:
    """forum.alpaca.markets t/5940 (Alpaca's answer): the stop is elected when the stock trades at
    the stop; a bid/ask touch does not elect it."""
    order(r, qty=10)
    o = order(r, side="sell", type="stop", stop_price=99.0, time_in_force="gtc")
    r.quote("AAPL", "98.90", "98.95")
    assert o.status == "new" and not o.triggered
    r.trade("AAPL", "99.01")
    assert not o.triggered
    r.trade("AAPL", "99.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("98.90")


def test_a_sell_stop_is_not_collared(r: Rig) -> None:
    """[ORD "Stop Orders"]: "Sell stop orders are not converted into stop limit orders"."""
    order(r, qty=10)
    o = order(r, side="sell", type="stop", stop_price=99.0, time_in_force="gtc")
    r.quote("AAPL", "80.00", "80.05")
    r.trade("AAPL", "80.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("80.00")


@pytest.mark.parametrize(
    ("symbol", "stop", "above_collar", "at_collar"),
    [
        ("GME", "21.00", "21.85", "21.84"),  # under $50: 4 % above the stop, 21.84
        ("AAPL", "101.00", "103.53", "103.52"),  # $50 and above: 2.5 %, 103.525 kept to the cent
    ],
)
def test_an_elected_buy_stop_is_a_stop_limit_with_alpacas_collar(
    r: Rig, symbol: str, stop: str, above_collar: str, at_collar: str
) -> None:
    """[ORD "Stop Orders"]: a buy stop becomes a stop-limit 4 % above a stop under $50, 2.5 % above
    a stop of $50 or more (the TSLA example: stop 210, limit 215.25)."""
    o = order(r, symbol=symbol, type="stop", stop_price=float(stop), time_in_force="gtc")
    r.quote(symbol, str(Decimal(above_collar) - Decimal("0.02")), above_collar)
    r.trade(symbol, stop)
    assert o.triggered and o.status == "new"  # elected, but the ask is above the collar
    r.quote(symbol, str(Decimal(at_collar) - Decimal("0.02")), at_collar)
    assert o.status == "filled" and o.filled_avg_price == Decimal(at_collar)


def test_a_stop_limit_is_elected_by_a_print_then_works_its_limit(r: Rig) -> None:
    """[ORD "Stop Limit Order"]: once the stop is reached it is a limit order at its limit price."""
    order(r, qty=10)
    o = order(r, side="sell", type="stop_limit", stop_price=99.0, limit_price=98.8, time_in_force="gtc")
    r.quote("AAPL", "98.50", "98.60")
    assert not o.triggered
    r.trade("AAPL", "98.55")
    assert o.triggered and o.status == "new"  # the bid is below the limit
    r.quote("AAPL", "98.90", "99.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("98.90")


# ---- trailing stops ------------------------------------------------------------------------------
def test_a_trailing_stop_tracks_prints_and_is_elected_by_one(r: Rig) -> None:
    """[ORD "Trailing Stop Orders"]: the hwm is the highest price since submission; the stop is
    hwm - trail; it fires when the price reaches the stop (a print, forum t/5940)."""
    order(r, qty=10)
    o = order(r, side="sell", type="trailing_stop", trail_price=1.0, time_in_force="gtc")
    assert o.hwm == Decimal("100.00") and o.stop_price == Decimal("99.00")  # the last print
    r.trade("AAPL", "102.00")
    assert o.hwm == Decimal("102.00") and o.stop_price == Decimal("101.00")
    r.quote("AAPL", "100.50", "100.52")  # a quote below the stop is not a print
    assert o.status == "new" and o.hwm == Decimal("102.00")
    r.trade("AAPL", "101.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("100.50")
    assert order_json(r.venue.engine, o)["hwm"] == "102"


@pytest.mark.parametrize("tif", ["ioc", "fok", "opg", "cls"])
def test_a_trailing_stop_takes_day_or_gtc_only(r: Rig, tif: str) -> None:
    """[ORD "Trailing Stop Orders"]: "Valid time-in-force values for trailing stop are day and gtc"."""
    order(r, qty=10)
    e = reject(r, side="sell", type="trailing_stop", trail_percent=1.0, time_in_force=tif)
    assert e.status == 422 and e.code == 42210000 and "trailing" in e.message and tif in e.message
    assert order(r, side="sell", qty=5, type="trailing_stop", trail_percent=1.0).status == "new"


# ---- OPG window ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("utc", "accepted"),
    [
        (datetime(2025, 3, 4, 14, 27, 59, tzinfo=UTC), True),  # 09:27:59 New York
        (datetime(2025, 3, 4, 14, 28, 0, tzinfo=UTC), False),  # 09:28
        (datetime(2025, 3, 4, 15, 0, tzinfo=UTC), False),  # 10:00, the session is open
        (datetime(2025, 3, 4, 23, 59, 59, tzinfo=UTC), False),  # 18:59:59
        (datetime(2025, 3, 5, 0, 0, tzinfo=UTC), True),  # 19:00: queued for tomorrow's open
    ],
)
def test_opg_is_refused_between_9_28_and_19_00_new_york(
    tmp_path: Path, utc: datetime, accepted: bool
) -> None:
    """[ORD "Time in Force"]: OPG orders submitted after 9:28am but before 7:00pm ET are rejected;
    after 7:00pm they go to the next day's opening auction."""
    rig = make_rig(tmp_path, clock=ManualClock(utc))
    if accepted:
        o = order(rig, time_in_force="opg")
        assert o.status == "new" and o.eligible_at is not None and o.eligible_at > utc
        assert o.eligible_at - utc < timedelta(hours=15)
    else:
        e = reject(rig, time_in_force="opg")
        assert e.status == 422 and e.code == 42210000 and "opg" in e.message.lower()


def test_opg_on_a_day_without_a_session_is_queued(tmp_path: Path) -> None:
    """The window is about the day's opening auction; on a Saturday the order waits for Monday."""
    rig = make_rig(tmp_path, clock=ManualClock(T0.replace(day=8)))  # Saturday 10:00 New York
    o = order(rig, time_in_force="opg")
    assert o.status == "new" and o.eligible_at == datetime(2025, 3, 10, 13, 30, tzinfo=UTC)  # 09:30 EDT


# ---- the simulator tells the venue of its prints -------------------------------------------------
def test_the_simulator_reports_every_print_it_sends_to_trade_listeners() -> None:
    uni = build_universe()
    cal = MarketCalendar(always_open=True)
    now = [datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)]
    sim = MarketSimulator(uni, cal, HistoryGenerator(uni, cal, 3), seed=3, rate=2000.0, clock=lambda: now[0])
    seen: list[tuple[str, Decimal]] = []
    sim.on_trade(lambda sym, price: seen.append((sym, price)))
    sent: list[tuple[str, Decimal]] = []
    for _ in range(50):
        now[0] += timedelta(seconds=0.02)
        for m in sim.step(int(now[0].timestamp() * 1e6) * 1000).messages():
            if m["T"] == "t":
                sent.append((m["S"], Decimal(str(m["p"]))))
    assert len(sent) > 50
    assert seen == sent
