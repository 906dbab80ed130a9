"""The pre-check refuses what Alpaca would refuse after the order was sent, and counts working
orders. Each test names the Alpaca source of the rule it encodes.

Sources:
[ORD]  Alpaca docs "Orders at Alpaca" (https://docs.alpaca.markets/docs/orders-at-alpaca): sub-penny
       increments, stop orders, bracket / OCO / OTO rules and the stop-loss threshold, trailing stops,
       extended hours, crypto time in force, buying power.
[CRY]  Alpaca docs "Crypto Orders" (https://docs.alpaca.markets/docs/crypto-orders): market, limit and
       stop_limit; gtc and ioc.
[FRAC] Alpaca support "How can I pass a fractional order?": qty and notional up to 9 decimals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import Asset, OrderLegSpec, OrderRequest, Quote
from services.risk.gate import RiskGate
from services.risk.limits import RiskLimits
from tests.unit.risk.test_gate import NOW, Prices, account, ctx, failed, req

D = Decimal


def limits(**kw: Any) -> RiskGate:
    return RiskGate(RiskLimits(**{k: D(v) if isinstance(v, str) else v for k, v in kw.items()}))


def check_of(report: Any, name: str) -> Any:
    return next(c for c in report.checks if c.name == name)


# --- working orders ------------------------------------------------------------------------------
def test_working_buys_count_toward_the_position_limit() -> None:
    """Two resting buys of 80 against a 100-share limit: the second is refused (worst case: both
    fill). Alpaca holds buying power for open buy orders [ORD "Buying Power"]; Heron's position limit
    holds for the same worst case."""
    gate = limits(max_position_qty="100")
    first = gate.check(req(qty="80"), ctx())
    assert first.passed, first.explain()
    second = gate.check(req(qty="80", price="99"), ctx(pending_buys={"AAPL": D(80)}))
    assert "max_position" in failed(second)
    nums = check_of(second, "max_position").numbers
    assert nums["post_trade_qty"] == "160" and nums["working_buys"] == "80"


def test_working_sells_count_toward_a_short_position_limit() -> None:
    gate = limits(max_position_qty="100")
    rep = gate.check(req(OrderSide.SELL, qty="80", price="100"), ctx(pending_sells={"AAPL": D(80)}))
    assert "max_position" in failed(rep)
    assert check_of(rep, "max_position").numbers["post_trade_qty"] == "-160"


def test_a_sell_is_not_reducing_when_working_sells_already_cover_the_position() -> None:
    """Position 100 with a resting take-profit sell of 100: another sell of 100 would open a short
    if both fill (Alpaca answers "insufficient qty available" for it [ORD bracket section: "Alpaca's
    system would view one of the two orders as exceeding the available position quantity"])."""
    gate = limits(allow_short=False)
    rep = gate.check(
        req(OrderSide.SELL, qty="100", price="100"),
        ctx(positions={"AAPL": D(100)}, pending_sells={"AAPL": D(100)}),
    )
    assert "tradable" in failed(rep)


def test_working_short_sales_count_in_gross_exposure() -> None:
    gate = limits(max_gross_exposure="35000")
    # 300 MSFT working short at 100 = 30k of worst-case gross; a 10k buy of AAPL breaks 35k
    rep = gate.check(
        req(qty="100", price="100"),
        ctx(gross_exposure=D(30000), pending_sells={"MSFT": D(300)}, pending_sell_exposure=D(30000)),
    )
    assert "exposure" in failed(rep)
    assert check_of(rep, "exposure").numbers["gross"] == "40000"


def test_an_order_that_does_not_grow_exposure_passes_even_above_the_limit() -> None:
    gate = limits(max_gross_exposure="1000", max_net_exposure="1000")
    rep = gate.check(
        req(OrderSide.SELL, qty="10", price="100"),
        ctx(positions={"AAPL": D(50)}, gross_exposure=D(5000), net_exposure=D(5000)),
    )
    assert "exposure" not in failed(rep), rep.explain()


# --- stops ---------------------------------------------------------------------------------------
def test_a_buy_stop_is_valued_at_its_trigger_price() -> None:
    """A buy stop at 150 (market 100) fills around 150, not at today's ask [ORD "Stop Orders"]."""
    rep = RiskGate().check(
        req(qty="10", price=None, type=OrderType.STOP, stop_price=D(150)),
        ctx(account=account(buying_power=D(1200))),
    )
    assert "buying_power" in failed(rep)
    assert check_of(rep, "buying_power").numbers["notional"] == "1500"


def test_a_protective_stop_limit_five_percent_away_is_not_a_fat_finger() -> None:
    """The fat-finger band compares a stop-limit's limit with its stop [ORD "Stop Limit Order": once
    the stop is reached the order becomes a limit order at the limit price]."""
    rep = RiskGate().check(
        req(OrderSide.SELL, qty="10", price="94.5", type=OrderType.STOP_LIMIT, stop_price=D(95)),
        ctx(positions={"AAPL": D(10)}),
    )
    assert rep.passed, rep.explain()
    assert "stop" in check_of(rep, "price_band").numbers


def test_a_stop_limit_whose_limit_is_far_through_its_stop_is_a_fat_finger() -> None:
    rep = RiskGate().check(
        req(OrderSide.SELL, qty="10", price="80", type=OrderType.STOP_LIMIT, stop_price=D(95)),
        ctx(positions={"AAPL": D(10)}),
    )
    assert "price_band" in failed(rep)
    assert "stop" in check_of(rep, "price_band").detail


@pytest.mark.parametrize(("side", "stop"), [(OrderSide.SELL, "101"), (OrderSide.BUY, "99")])
def test_a_stop_on_the_wrong_side_of_the_market_is_refused(side: OrderSide, stop: str) -> None:
    """Alpaca refuses a sell stop at or above the market ("stop price must not be greater than base
    price / 1.001", quoted from Alpaca's answers in Lumiwealth/lumibot lumibot/brokers/alpaca.py);
    a buy stop must likewise be above it [ORD "Stop Orders": buy if it goes up to the stop]."""
    rep = RiskGate().check(
        req(side, qty="1", price=None, type=OrderType.STOP, stop_price=D(stop)),
        ctx(positions={"AAPL": D(10)}),
    )
    assert "stop_side" in failed(rep)
    assert check_of(rep, "stop_side").numbers["stop_price"] == stop


# --- prices --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "price", "ok"),
    [
        ("limit_price", "100.123", False),
        ("limit_price", "100.12", True),
        ("limit_price", "100.120", True),
        ("limit_price", "0.12345", False),
        ("limit_price", "0.1234", True),
        ("stop_price", "50.001", False),
    ],
)
def test_sub_penny_prices_are_refused(field: str, price: str, ok: bool) -> None:
    """[ORD "Sub-penny increments"]: >= $1.00 at most 2 decimals, < $1.00 at most 4; Alpaca answers
    42210000 "sub-penny increment does not fulfill minimum pricing criteria"."""
    if field == "limit_price":
        request = req(qty="1", price=price)
    else:
        request = req(OrderSide.SELL, qty="1", price=None, type=OrderType.STOP, stop_price=D(price))
    rep = RiskGate().check(request, ctx(positions={"AAPL": D(10)}))
    assert ("price_increment" not in failed(rep)) is ok, rep.explain()


def test_crypto_prices_are_not_held_to_the_stock_penny_rule() -> None:
    rep = RiskGate().check(crypto_req(OrderType.LIMIT, limit_price=D("65000.125")), crypto_ctx())
    assert "price_increment" not in failed(rep), rep.explain()


# --- brackets, OCO, OTO --------------------------------------------------------------------------
def bracket(
    side: OrderSide, tp: str, sl: str, cls: OrderClass = OrderClass.BRACKET, **kw: Any
) -> OrderRequest:
    return req(
        side,
        qty="10",
        price=kw.pop("price", "100"),
        order_class=cls,
        take_profit=OrderLegSpec(limit_price=D(tp)) if tp else None,
        stop_loss=OrderLegSpec(stop_price=D(sl)) if sl else None,
        **kw,
    )


@pytest.mark.parametrize(
    ("side", "tp", "sl", "ok"),
    [
        (OrderSide.BUY, "105", "95", True),
        (OrderSide.BUY, "99", "95", False),  # take-profit below the entry
        (OrderSide.BUY, "105", "100", False),  # stop-loss not 0.01 below the base price
        (OrderSide.SELL, "95", "105", True),
        (OrderSide.SELL, "105", "95", False),
    ],
)
def test_bracket_legs_on_the_wrong_side_are_refused(side: OrderSide, tp: str, sl: str, ok: bool) -> None:
    """[ORD "Bracket Orders"]: take_profit.limit_price above stop_loss.stop_price for a buy, the
    reverse for a sell; [ORD "Threshold on stop price of stop-loss orders"]: the stop at least $0.01
    below (sell) / above (buy) the base price, the entry's limit price; user reports of Alpaca's
    "take_profit.limit_price must be >= base_price + 0.01"."""
    rep = RiskGate().check(bracket(side, tp, sl), ctx(positions={"AAPL": D(0)}))
    assert ("order_legs" not in failed(rep)) is ok, rep.explain()


def test_oco_legs_are_an_exit_on_one_side() -> None:
    """[ORD "OCO Orders"]: both legs on the same side, exit only, type limit; the stop-loss at least
    $0.01 below the take-profit's limit (the OCO base price) and the market."""
    good = bracket(OrderSide.SELL, "110", "95", OrderClass.OCO, price="110")
    rep = RiskGate().check(good, ctx(positions={"AAPL": D(10)}))
    assert "order_legs" not in failed(rep), rep.explain()
    bad = bracket(OrderSide.SELL, "95", "110", OrderClass.OCO, price="95")
    rep = RiskGate().check(bad, ctx(positions={"AAPL": D(10)}))
    assert "order_legs" in failed(rep)


def test_an_exit_larger_than_the_quantity_not_held_by_working_exits_is_refused() -> None:
    """Long 10 whose bracket exits (working, holding the 10 shares) are in place: an OCO exit of 10
    more is refused, shorting allowed or not. Alpaca holds the shares of working sells
    (``held_for_orders``; alpaca-py ``Position.qty_available``: "Total number of shares available
    minus open orders") and refuses the sell with 403 "insufficient qty available for order
    (requested: 10, available: 0)" (docs/alpaca-protocol.md, error codes; [ORD bracket section]:
    "Alpaca's system would view one of the two orders as exceeding the available position
    quantity")."""
    gate = limits(allow_short=True)
    held = ctx(positions={"AAPL": D(10)}, pending_sells={"AAPL": D(10)})
    rep = gate.check(bracket(OrderSide.SELL, "110", "95", OrderClass.OCO, price="110"), held)
    assert "qty_available" in failed(rep)
    check = check_of(rep, "qty_available")
    assert "not already held by working exit orders" in check.detail
    assert check.numbers == {"qty": "10", "position": "10", "held_for_orders": "10", "available": "0"}
    assert "qty_available" in failed(gate.check(req(OrderSide.SELL, qty="10", price="110"), held))
    partly = ctx(positions={"AAPL": D(10)}, pending_sells={"AAPL": D(4)})
    assert "qty_available" not in failed(gate.check(req(OrderSide.SELL, qty="6", price="110"), partly))
    assert "qty_available" in failed(gate.check(req(OrderSide.SELL, qty="7", price="110"), partly))


def test_an_oco_with_no_position_and_a_sell_that_flips_are_refused() -> None:
    """[ORD "OCO Orders"]: an OCO is an exit; [API] "An order that would flip your position (long to
    short or the reverse) will return a 403"."""
    gate = limits(allow_short=True)
    oco = bracket(OrderSide.SELL, "110", "95", OrderClass.OCO, price="110")
    assert "qty_available" in failed(gate.check(oco, ctx(positions={})))
    flip = gate.check(req(OrderSide.SELL, qty="15", price="110"), ctx(positions={"AAPL": D(10)}))
    assert "would flip" in check_of(flip, "qty_available").detail
    # a short sale from flat opens a position: not an exit, not checked here
    assert "qty_available" not in failed(gate.check(req(OrderSide.SELL, qty="15", price="110"), ctx()))


def test_oto_stop_loss_above_the_market_is_refused() -> None:
    """Alpaca-API #166: "stop price must be less than base_price - 0.01" for an OTO stop-loss."""
    rep = RiskGate().check(bracket(OrderSide.BUY, "", "100.5", OrderClass.OTO, price=None), ctx())
    assert "order_legs" in failed(rep)


def test_bracket_needs_day_or_gtc() -> None:
    """[ORD "Bracket Orders"]: time_in_force must be day or gtc."""
    rep = RiskGate().check(bracket(OrderSide.BUY, "105", "95", tif=TimeInForce.IOC), ctx())
    assert "order_type" in failed(rep)


# --- minimums, crypto, trailing stops, extended hours -----------------------------------------------
BTC = Asset("BTC/USD", "crypto", "CRYPTO", True, False, True)


class CryptoPrices(Prices):
    def __init__(self) -> None:
        super().__init__()
        self.q = Quote("BTC/USD", D(64990), D(65010), D(1), D(1), NOW)


def crypto_ctx(**kw: Any) -> Any:
    return ctx(asset=BTC, prices=CryptoPrices(), positions={"BTC/USD": D(1)}, **kw)


def crypto_req(otype: OrderType, tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> OrderRequest:
    return OrderRequest(
        "BTC/USD", kw.pop("side", OrderSide.BUY), otype, tif, qty=kw.pop("qty", D("0.01")), **kw
    )


def test_a_stock_notional_under_one_dollar_is_refused() -> None:
    """User reports of Alpaca's 403 "cost basis must be >= minimal amount of order 1" (stocks)."""
    request = OrderRequest("AAPL", OrderSide.BUY, OrderType.MARKET, TimeInForce.DAY, notional=D("0.5"))
    rep = RiskGate().check(request, ctx())
    assert "min_order_value" in failed(rep)
    assert check_of(rep, "min_order_value").numbers["minimum"] == "1"


def test_a_crypto_order_under_ten_dollars_is_refused() -> None:
    """User reports (paper runs, 2026) of Alpaca's 403 code 40310000 "cost basis must be >= minimal
    amount of order 10" for crypto."""
    rep = RiskGate().check(crypto_req(OrderType.MARKET, qty=D("0.0001")), crypto_ctx())
    assert "min_order_value" in failed(rep)
    ok = RiskGate().check(crypto_req(OrderType.MARKET, qty=D("0.001")), crypto_ctx())
    assert "min_order_value" not in failed(ok), ok.explain()


def test_closing_a_small_remainder_is_not_held_to_the_minimum() -> None:
    request = OrderRequest("AAPL", OrderSide.SELL, OrderType.MARKET, TimeInForce.DAY, qty=D("0.004"))
    rep = RiskGate().check(request, ctx(positions={"AAPL": D("0.004")}))
    assert "min_order_value" not in failed(rep), rep.explain()


@pytest.mark.parametrize(
    ("otype", "tif", "ok"),
    [
        (OrderType.STOP, TimeInForce.GTC, False),
        (OrderType.TRAILING_STOP, TimeInForce.GTC, False),
        (OrderType.LIMIT, TimeInForce.DAY, False),
        (OrderType.LIMIT, TimeInForce.FOK, False),
        (OrderType.LIMIT, TimeInForce.IOC, True),
        (OrderType.STOP_LIMIT, TimeInForce.GTC, True),
    ],
)
def test_crypto_order_types_and_times_in_force(otype: OrderType, tif: TimeInForce, ok: bool) -> None:
    """[CRY]: market, limit and stop_limit; gtc and ioc only ([ORD "Crypto Time in Force": OPG, fok,
    day and CLS are not supported])."""
    kw: dict[str, Any] = {}
    if otype in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        kw["limit_price"] = D(66000)
    if otype in (OrderType.STOP, OrderType.STOP_LIMIT):
        kw["stop_price"] = D(65900)
    if otype is OrderType.TRAILING_STOP:
        kw["trail_percent"] = D(1)
    rep = RiskGate().check(crypto_req(otype, tif, **kw), crypto_ctx())
    assert ("order_type" not in failed(rep)) is ok, rep.explain()


@pytest.mark.parametrize(
    ("tif", "ok"), [(TimeInForce.IOC, False), (TimeInForce.OPG, False), (TimeInForce.GTC, True)]
)
def test_trailing_stops_are_day_or_gtc(tif: TimeInForce, ok: bool) -> None:
    """[ORD "Trailing Stop Orders"]: valid time-in-force values are day and gtc."""
    request = req(
        OrderSide.SELL, qty="1", price=None, type=OrderType.TRAILING_STOP, tif=tif, trail_price=D(2)
    )
    rep = RiskGate().check(request, ctx(positions={"AAPL": D(10)}))
    assert ("order_type" not in failed(rep)) is ok, rep.explain()


@pytest.mark.parametrize(
    ("otype", "tif"), [(OrderType.MARKET, TimeInForce.DAY), (OrderType.LIMIT, TimeInForce.GTC)]
)
def test_extended_hours_only_for_limit_day(otype: OrderType, tif: TimeInForce) -> None:
    """[ORD "Extended Hours Trading"]: only limit orders with time_in_force day are eligible."""
    price = "100" if otype is OrderType.LIMIT else None
    rep = RiskGate().check(req(qty="1", price=price, type=otype, tif=tif, extended_hours=True), ctx())
    assert "market_hours" in failed(rep)
    assert "limit" in check_of(rep, "market_hours").detail


def test_more_than_nine_decimals_of_quantity_is_refused() -> None:
    """[FRAC]: "Both notional and qty fields can take up to 9 decimal point values"."""
    rep = RiskGate().check(req(qty="1.0000000001"), ctx())
    assert "order_type" in failed(rep)
