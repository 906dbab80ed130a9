"""Matching rules: order types, TIFs, classes, partial fills, cancel/replace, shorting, buying power."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.exchange.errors import ApiError
from services.exchange.http.entities import order_json, position_json, trade_update_json
from services.exchange.http.order_requests import replace_json, submit_json
from services.exchange.orders import VenueOrder
from tests.support.clock import ManualClock

from .test_venue_fakes import T0, Rig, make_rig


def order(r: Rig, **body: Any) -> VenueOrder:
    base: dict[str, Any] = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}
    base.update(body)
    if "qty" not in base and "notional" not in base:
        base["qty"] = 10.0
    o: VenueOrder = r.venue.run(lambda: submit_json(r.venue.engine, base))
    r.venue.match_pending()  # what the loop does right after the answer (see test_async_fills.py)
    return o


def reject(r: Rig, **body: Any) -> ApiError:
    with pytest.raises(ApiError) as ei:
        order(r, **body)
    return ei.value


def events(r: Rig) -> list[str]:
    return [u["event"] for u in r.venue.hub_log]


@pytest.fixture
def r(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path, seed=12345)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no random partials
    log: list[dict[str, Any]] = []
    rig.venue.hub.publish = lambda u: log.append(trade_update_json(u))  # type: ignore[method-assign]
    rig.venue.hub_log = log  # type: ignore[attr-defined]
    return rig


def test_market_buy_fills_at_the_ask_and_books_cash_and_position(r: Rig) -> None:
    o = order(r, qty=10.0)
    assert o.status == "filled" and o.filled_qty == 10 and o.filled_avg_price == Decimal("100.01")
    led = r.venue.ledger
    assert led.cash == Decimal("100000") - Decimal("1000.1")
    assert led.positions["AAPL"].qty == 10 and led.positions["AAPL"].avg_entry_price == Decimal("100.01")
    assert events(r) == ["new", "fill"]
    fill = r.venue.hub_log[-1]
    assert fill["price"] == "100.01" and fill["qty"] == "10" and fill["position_qty"] == "10"
    assert fill["order"]["status"] == "filled" and len(fill["execution_id"]) == 36


def test_market_sell_fills_at_the_bid(r: Rig) -> None:
    order(r, qty=10.0)
    s = order(r, side="sell", qty=4.0)
    assert s.filled_avg_price == Decimal("99.99")
    assert r.venue.ledger.positions["AAPL"].qty == 6
    assert r.venue.ledger.positions["AAPL"].avg_entry_price == Decimal("100.01")  # unchanged on decrease


def test_limit_buy_rests_until_marketable_and_fills_at_the_touch(r: Rig) -> None:
    o = order(r, type="limit", limit_price=99.5, time_in_force="gtc")
    assert o.status == "new" and "AAPL" in r.venue.engine.resting
    r.quote("AAPL", "99.60", "99.70")
    assert o.status == "new"
    r.quote("AAPL", "99.20", "99.40")
    assert o.status == "filled" and o.filled_avg_price == Decimal("99.40")  # the ask, better than the limit
    assert "AAPL" not in r.venue.engine.resting


def test_limit_sell_never_fills_below_its_limit(r: Rig) -> None:
    order(r, qty=5.0)
    s = order(r, side="sell", qty=5.0, type="limit", limit_price=101.0)
    r.quote("AAPL", "100.99", "101.05")
    assert s.status == "new"
    r.quote("AAPL", "101.02", "101.05")
    assert s.status == "filled" and s.filled_avg_price == Decimal("101.02")


def test_stop_is_elected_by_a_print_not_the_touch(r: Rig) -> None:
    """Stops elect on trades (forum.alpaca.markets t/5940); see test_order_types.py."""
    o = order(r, type="stop", stop_price=101.0, time_in_force="gtc")
    r.quote("AAPL", "100.98", "101.00")
    assert o.status == "new" and not o.triggered
    r.trade("AAPL", "101.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("101.00")


def test_stop_limit_becomes_a_limit_when_triggered(r: Rig) -> None:
    order(r, qty=10.0)
    o = order(r, side="sell", type="stop_limit", stop_price=99.0, limit_price=98.8, time_in_force="gtc")
    r.quote("AAPL", "98.50", "98.60")
    r.trade("AAPL", "98.55")  # elected, but the bid is below the limit
    assert o.triggered and o.status == "new"
    r.quote("AAPL", "98.90", "99.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("98.90")


def test_trailing_stop_tracks_the_high_water_mark(r: Rig) -> None:
    order(r, qty=10.0)
    o = order(r, side="sell", type="trailing_stop", trail_price=1.0, time_in_force="gtc")
    assert o.hwm == Decimal("100.00") and o.stop_price == Decimal("99.00")  # the last print
    r.trade("AAPL", "102.00")
    assert o.hwm == Decimal("102.00") and o.stop_price == Decimal("101.00")
    r.trade("AAPL", "101.50")
    assert o.status == "new" and o.hwm == Decimal("102.00")
    r.quote("AAPL", "100.99", "101.01")
    r.trade("AAPL", "101.00")
    assert o.status == "filled" and o.filled_avg_price == Decimal("100.99")
    assert order_json(r.venue.engine, o)["hwm"] == "102"


def test_trailing_percent_buy_tracks_the_lowest_ask(r: Rig) -> None:
    o = order(r, type="trailing_stop", trail_percent=1.0, time_in_force="gtc")
    r.quote("AAPL", "94.98", "95.00")
    r.trade("AAPL", "95.00")
    assert o.hwm == Decimal("95.00") and o.stop_price == Decimal("95.95")
    r.quote("AAPL", "95.90", "95.96")
    assert o.status == "new"  # the quote moved, no print yet
    r.trade("AAPL", "95.95")
    assert o.status == "filled" and o.filled_avg_price == Decimal("95.96")


def test_random_partial_fill_then_the_rest_on_the_next_quote(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    draws = iter([0.05, 0.99])
    rig.venue.engine.rng.random = lambda: next(draws)  # type: ignore[method-assign]
    rig.venue.engine.rng.randint = lambda a, b: 3  # type: ignore[method-assign]
    o = order(rig, type="limit", limit_price=100.05, time_in_force="gtc")
    assert o.status == "partially_filled" and o.filled_qty == 3
    assert "AAPL" in rig.venue.engine.resting
    rig.quote("AAPL", "99.98", "100.02")
    assert o.status == "filled" and o.filled_qty == 10
    assert o.filled_avg_price == Decimal("100.017")  # (3 * 100.01 + 7 * 100.02) / 10


def test_partial_fills_are_reproducible_from_the_seed(tmp_path: Path) -> None:
    def run(d: Path) -> list[str]:
        rig = make_rig(d, seed=7)
        return [str(order(rig, qty=7.0).filled_qty) for _ in range(40)]

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a == b
    assert any(q != "7" for q in a)  # 10 % partials: 40 draws all full is (0.9^40) unlikely, fixed seed


def test_ioc_cancels_what_cannot_fill_and_fok_is_all_or_nothing(r: Rig) -> None:
    ioc = order(r, type="limit", limit_price=99.0, time_in_force="ioc")
    assert ioc.status == "canceled" and ioc.filled_qty == 0
    fok = order(r, type="limit", limit_price=100.02, time_in_force="fok")
    assert fok.status == "filled" and fok.filled_qty == 10


def test_fok_never_partially_fills(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.venue.engine.rng.random = lambda: 0.0  # type: ignore[method-assign]  # would always partial
    o = order(rig, qty=10.0, time_in_force="fok")
    assert o.status == "filled" and o.filled_qty == 10


def test_market_day_order_outside_hours_waits_for_the_open(tmp_path: Path) -> None:
    clock = ManualClock(T0.replace(hour=23))  # 18:00 New York
    rig = make_rig(tmp_path, clock=clock)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]
    o = order(rig)
    assert o.status == "new" and o.filled_qty == 0
    clock.now = T0.replace(day=5, hour=14, minute=31)  # next day 09:31 New York
    rig.quote("AAPL", "99.99", "100.01")
    assert o.status == "filled"


def test_day_orders_expire_at_the_close_gtc_do_not(r: Rig) -> None:
    day = order(r, type="limit", limit_price=90.0)
    gtc = order(r, type="limit", limit_price=90.0, time_in_force="gtc")
    r.clock.now = T0.replace(hour=21, minute=1)  # 16:01 New York
    r.venue.sweep()
    assert day.status == "expired" and day.expired_at is not None
    assert gtc.status == "new"
    assert "expired" in events(r)


def test_opg_fills_at_the_open_and_expires_otherwise(r: Rig) -> None:
    r.clock.now = T0.replace(hour=13)  # 08:00 New York, before the 09:28 cut-off
    o = order(r, time_in_force="opg")
    assert o.status == "new"  # waits for today's open
    r.clock.now = T0.replace(hour=14, minute=30)
    r.quote("AAPL", "99.99", "100.01")
    assert o.status == "filled"
    r.clock.now = T0.replace(day=5, hour=0)  # 19:00 New York: queued for tomorrow's auction
    late = order(r, type="limit", limit_price=50.0, time_in_force="opg")
    r.clock.now = T0.replace(day=6, hour=14, minute=32)
    r.venue.sweep()
    assert late.status == "expired"


def test_halted_symbol_rests_and_fills_after_the_halt(r: Rig) -> None:
    r.market.halted.add("AAPL")
    o = order(r)
    assert o.status == "new"
    r.market.halted.clear()
    r.quote("AAPL", "99.99", "100.01")
    assert o.status == "filled"


def test_paused_matching_holds_fills_until_resumed(r: Rig) -> None:
    r.venue.set_matching_paused(True)
    o = order(r)
    assert o.status == "new"
    r.venue.set_matching_paused(False)
    assert o.status == "filled"


def test_crypto_trades_around_the_clock_and_takes_gtc_ioc_only(r: Rig) -> None:
    r.clock.now = T0.replace(day=8)  # a Saturday
    o = order(r, symbol="BTCUSD", qty=0.5, time_in_force="gtc")
    assert o.symbol == "BTC/USD" and o.status == "filled" and o.filled_avg_price == Decimal("50010")
    e = reject(r, symbol="BTC/USD", qty=0.5, time_in_force="day")
    assert e.status == 422 and "crypto" in e.message


def test_notional_order_computes_a_fractional_qty(r: Rig) -> None:
    o = order(r, notional=250.5)
    assert o.status == "filled" and o.notional == Decimal("250.5")
    assert o.filled_qty == Decimal("2.504749525")  # 250.5 / 100.01, cut to 9 places
    assert order_json(r.venue.engine, o)["notional"] == "250.5"
    assert o.qty is None  # Order entity docs, Alpaca-API #191: qty stays null on a notional order


# ---- brackets, OCO, OTO --------------------------------------------------------------------------
def bracket(r: Rig, **kw: Any) -> VenueOrder:
    return order(
        r,
        qty=5.0,
        type="limit",
        limit_price=99.0,
        time_in_force="gtc",
        order_class="bracket",
        take_profit={"limit_price": 110.0},
        stop_loss={"stop_price": 90.0, "limit_price": 89.5},
        **kw,
    )


def test_bracket_legs_are_held_until_the_parent_fills_then_oco(r: Rig) -> None:
    p = bracket(r)
    tp, sl = (r.venue.engine.orders[i] for i in p.leg_ids)
    assert (tp.status, sl.status) == ("held", "held")
    assert tp.type == "limit" and sl.type == "stop_limit" and tp.side == sl.side == "sell"
    r.quote("AAPL", "110", "110.5")  # take-profit price reached, but the parent is not filled
    assert tp.status == "held" and tp.filled_qty == 0
    r.quote("AAPL", "98.5", "98.9")
    assert p.status == "filled" and (tp.status, sl.status) == ("new", "held")  # see test_order_types.py
    r.quote("AAPL", "110.01", "110.05")
    assert tp.status == "filled" and sl.status == "canceled"
    assert "AAPL" not in r.venue.ledger.positions


def test_bracket_parent_cancel_cancels_held_legs(r: Rig) -> None:
    p = bracket(r)
    r.venue.run(lambda: r.venue.engine.cancel(p.id))
    assert p.status == "canceled"
    assert all(r.venue.engine.orders[i].status == "canceled" for i in p.leg_ids)


def test_bracket_price_sanity(r: Rig) -> None:
    e = reject(
        r,
        qty=5.0,
        type="limit",
        limit_price=99.0,
        time_in_force="gtc",
        order_class="bracket",
        take_profit={"limit_price": 98.0},
        stop_loss={"stop_price": 90.0},
    )
    assert "take_profit.limit_price" in e.message


def test_oco_exits_a_position_and_never_fills_both(r: Rig) -> None:
    order(r, qty=10.0)
    p = order(
        r,
        side="sell",
        type="limit",
        time_in_force="gtc",
        order_class="oco",
        take_profit={"limit_price": 105.0},
        stop_loss={"stop_price": 95.0},
    )
    (sl,) = (r.venue.engine.orders[i] for i in p.leg_ids)
    assert p.limit_price == Decimal("105") and p.status == "new" and sl.status == "held"
    assert r.venue.engine.held_for_orders("AAPL", "sell") == 10  # the pair claims its qty once
    r.quote("AAPL", "94.9", "95.0")
    r.trade("AAPL", "94.95")
    assert sl.status == "filled" and p.status == "canceled"


def test_oco_needs_a_position(r: Rig) -> None:
    e = reject(
        r,
        side="sell",
        type="limit",
        time_in_force="gtc",
        order_class="oco",
        take_profit={"limit_price": 105.0},
        stop_loss={"stop_price": 95.0},
    )
    assert e.status == 403 and "insufficient qty" in e.message


def test_oto_leg_activates_after_the_parent_fills(r: Rig) -> None:
    p = order(
        r,
        type="limit",
        limit_price=100.05,
        time_in_force="gtc",
        order_class="oto",
        stop_loss={"stop_price": 95.0},
    )
    (leg,) = (r.venue.engine.orders[i] for i in p.leg_ids)
    assert p.status == "filled" and leg.status == "new" and leg.type == "stop"


# ---- cancel / replace ----------------------------------------------------------------------------
def test_cancel_and_not_cancelable(r: Rig) -> None:
    o = order(r, type="limit", limit_price=90.0, time_in_force="gtc")
    r.venue.run(lambda: r.venue.engine.cancel(o.id))
    assert o.status == "canceled" and o.canceled_at is not None
    with pytest.raises(ApiError) as ei:
        r.venue.engine.cancel(o.id)
    assert ei.value.status == 422
    with pytest.raises(ApiError) as ei:
        r.venue.engine.cancel("00000000-0000-4000-8000-000000000000")
    assert ei.value.status == 404 and ei.value.message == "order not found"


def test_replace_creates_a_new_order_linked_to_the_old(r: Rig) -> None:
    o = order(r, type="limit", limit_price=90.0, time_in_force="gtc", client_order_id="a1")
    new = r.venue.run(lambda: replace_json(r.venue.engine, o.id, {"qty": 20, "limit_price": 91.0}))
    assert o.status == "replaced" and o.replaced_by == new.id and o.replaced_at is not None
    assert new.replaces == o.id and new.qty == 20 and new.limit_price == Decimal("91") and new.status == "new"
    assert events(r)[-2:] == ["replaced", "new"]
    with pytest.raises(ApiError) as ei:
        replace_json(r.venue.engine, o.id, {"qty": 5})
    assert ei.value.status == 422 and ei.value.message == "unable to replace order in current state"
    r.quote("AAPL", "90.5", "90.9")
    assert new.status == "filled" and o.filled_qty == 0


def test_replace_a_bracket_leg_keeps_the_oco_link(r: Rig) -> None:
    p = bracket(r)
    r.quote("AAPL", "98.5", "98.9")
    tp_id, sl_id = p.leg_ids
    new_tp = r.venue.run(lambda: replace_json(r.venue.engine, tp_id, {"limit_price": 105.0}))
    sl = r.venue.engine.orders[sl_id]
    assert p.leg_ids == [new_tp.id, sl_id] and sl.oco_ids == [new_tp.id]
    r.quote("AAPL", "105.0", "105.1")
    assert new_tp.status == "filled" and sl.status == "canceled"


# ---- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"symbol": "ZZZZ"}, 422, 'asset "ZZZZ" not found'),
        ({"symbol": "HALT"}, 422, "not tradable"),
        ({"qty": None}, 422, "qty or notional is required"),
        ({"qty": 1.0, "notional": 100.0}, 422, "exclusive"),
        ({"qty": 0}, 422, "qty must be > 0"),
        ({"qty": -3}, 422, "qty must be > 0"),
        ({"qty": "NaN"}, 422, "invalid qty"),
        ({"qty": "1e999999"}, 422, "invalid qty"),
        ({"qty": "ten"}, 422, "invalid qty"),
        ({"qty": 1.5, "time_in_force": "gtc"}, 422, "fractional orders must be DAY orders"),
        ({"qty": 1.5, "type": "limit", "limit_price": 99.0}, 422, "fractional orders must be market orders"),
        ({"symbol": "GME", "qty": 1.5}, 422, "not fractionable"),
        ({"extended_hours": True}, 422, "extended hours order must be DAY limit orders"),
        ({"type": "limit"}, 422, "limit_price is required"),
        ({"limit_price": 10.0}, 422, "market orders must not have"),
        ({"type": "trailing_stop"}, 422, "exactly one of trail_price or trail_percent"),
        ({"type": "trailing_stop", "trail_price": 1.0, "trail_percent": 1.0}, 422, "exactly one"),
        ({"type": "limit", "limit_price": "100.001"}, 422, "sub-penny"),
        ({"client_order_id": "x" * 49}, 422, "48 characters"),
        ({"side": "hold"}, 422, "invalid side"),
        ({"type": "iceberg"}, 422, "invalid order type"),
        ({"time_in_force": "forever"}, 422, "invalid time_in_force"),
        ({"symbol": "NOQ"}, 422, "no quote"),
        ({"order_class": "mleg"}, 422, "not supported"),
    ],
)
def test_validation_errors(r: Rig, body: dict[str, Any], status: int, fragment: str) -> None:
    e = reject(r, **body)
    assert e.status == status and e.code == 42210000
    assert fragment in e.message


def test_sell_stop_above_market_is_rejected_with_prices(r: Rig) -> None:
    e = reject(r, side="sell", type="stop", stop_price=100.5, time_in_force="gtc")
    assert e.message == "stop price must be less than current price"
    assert e.extra == {"market_price": "99.99", "stop_price": "100.5"}


def test_duplicate_client_order_id(r: Rig) -> None:
    order(r, client_order_id="dup")
    e = reject(r, client_order_id="dup")
    assert e.message == "client_order_id must be unique"


# ---- shorting, flips, held qty, buying power -----------------------------------------------------
def test_short_sell_allowed_when_shortable_and_reported_negative(r: Rig) -> None:
    s = order(r, side="sell", qty=5.0)
    assert s.status == "filled" and r.venue.ledger.positions["AAPL"].qty == -5
    assert r.venue.hub_log[-1]["position_qty"] == "-5"
    assert position_json(r.venue, r.venue.ledger.positions["AAPL"])["side"] == "short"


def test_cannot_short_an_unshortable_asset(r: Rig) -> None:
    e = reject(r, symbol="GME", side="sell", qty=5.0)
    assert e.status == 403 and e.message == 'asset "GME" cannot be sold short'


def test_no_long_to_short_flip_in_one_order(r: Rig) -> None:
    order(r, qty=10.0)
    e = reject(r, side="sell", qty=15.0)
    assert e.status == 403 and e.code == 40310000
    assert e.message == "insufficient qty available for order (requested: 15, available: 10)"
    assert e.extra == {"available": "10", "existing_qty": "10", "held_for_orders": "0", "symbol": "AAPL"}


def test_no_short_to_long_flip_either(r: Rig) -> None:
    order(r, side="sell", qty=5.0)
    e = reject(r, side="buy", qty=8.0)
    assert e.status == 403 and "available: 5" in e.message


def test_shares_held_by_open_sells_are_not_available(r: Rig) -> None:
    order(r, qty=10.0)
    order(r, side="sell", qty=6.0, type="limit", limit_price=120.0, time_in_force="gtc")
    e = reject(r, side="sell", qty=5.0)
    assert e.extra["held_for_orders"] == "6" and e.extra["available"] == "4"


def test_buying_power_limits_buys_and_counts_open_orders(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, cash="1000")
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]
    order(rig, qty=5.0, type="limit", limit_price=99.0, time_in_force="gtc")  # reserves 495
    assert rig.venue.engine.buying_power() == Decimal("505")
    e = reject(rig, qty=6.0, type="limit", limit_price=99.0, time_in_force="gtc")
    assert e.status == 403 and e.message == "insufficient buying power"
    e = reject(rig, qty=5.0)  # market: 5 * 100.01 * 1.03 collar = 515.05 > 505
    assert e.message == "insufficient buying power"
    ok = order(rig, qty=4.0)
    assert ok.status == "filled"


def test_close_position_by_percentage_and_404(r: Rig) -> None:
    order(r, qty=10.0)
    o = r.venue.run(lambda: r.venue.engine.close_position("AAPL", percentage=Decimal(50)))
    assert o.side == "sell" and o.qty == 5 and o.status == "new"  # answered accepted, fills after
    r.venue.match_pending()
    assert o.status == "filled"
    with pytest.raises(ApiError) as ei:
        r.venue.engine.close_position("MSFT")
    assert ei.value.status == 404 and ei.value.message == "position does not exist"


def test_on_quote_is_a_no_op_without_resting_orders(r: Rig) -> None:
    before = len(r.venue.hub_log)
    for _ in range(1000):
        r.venue.on_quote("AAPL")
    assert len(r.venue.hub_log) == before and not r.venue.engine.resting
