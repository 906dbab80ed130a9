from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Account, Asset, OrderRequest, Quote
from services.risk.context import RiskContext
from services.risk.gate import RiskGate
from services.risk.limits import RiskLimits, RiskLimitsError

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Prices:
    def __init__(self, bid: str | None = "99.9", ask: str | None = "100.1", stale: bool = False) -> None:
        self.q = (
            None
            if bid is None or ask is None
            else Quote("AAPL", Decimal(bid), Decimal(ask), Decimal(1), Decimal(1), NOW)
        )
        self.stale = stale

    def quote(self, symbol: str) -> Quote | None:
        return self.q

    def last_price(self, symbol: str) -> Decimal | None:
        return self.q.mid if self.q else None

    def is_stale(self, symbol: str) -> bool:
        return self.stale

    def prev_close(self, symbol: str) -> Decimal | None:
        return None


class Hours:
    def __init__(self, open_: bool = True, ext: bool = False) -> None:
        self.open_, self.ext = open_, ext

    def is_open(self, ts: datetime) -> bool:
        return self.open_

    def is_extended(self, ts: datetime) -> bool:
        return self.ext


class Gate:
    allowed = True
    reason = ""


def account(**kw: Any) -> Account:
    base: dict[str, Any] = dict(
        id="a",
        account_number="1",
        status="ACTIVE",
        currency="USD",
        cash=Decimal(100000),
        equity=Decimal(100000),
        last_equity=Decimal(100000),
        buying_power=Decimal(200000),
    )
    base.update(kw)
    return Account(**base)


ASSET = Asset("AAPL", "us_equity", "NASDAQ", True, True, True)


def ctx(**kw: Any) -> RiskContext:
    base: dict[str, Any] = dict(
        now=NOW,
        trading_state=TradingState.ACTIVE,
        account=account(),
        asset=ASSET,
        prices=Prices(),
        positions={},
        gross_exposure=Decimal(0),
        net_exposure=Decimal(0),
        open_orders=0,
        hours=Hours(),
    )
    base.update(kw)
    return RiskContext(**base)


def req(
    side: OrderSide = OrderSide.BUY, qty: str = "10", price: str | None = "100", **kw: Any
) -> OrderRequest:
    typ = OrderType.LIMIT if price is not None else OrderType.MARKET
    return OrderRequest(
        "AAPL",
        side,
        kw.pop("type", typ),
        kw.pop("tif", TimeInForce.DAY),
        qty=Decimal(qty),
        limit_price=Decimal(price) if price else None,
        **kw,
    )


def failed(report: Any) -> set[str]:
    return {c.name for c in report.failures}


def test_happy_path_has_one_result_per_check_in_order() -> None:
    rep = RiskGate().check(req(), ctx())
    assert rep.passed, rep.explain()
    assert [c.name for c in rep.checks] == [
        "trading_state",
        "symbol_lists",
        "tradable",
        "market_hours",
        "order_type",
        "price_increment",
        "stop_side",
        "order_legs",
        "min_order_value",
        "max_order_qty",
        "max_order_notional",
        "price_band",
        "max_position",
        "exposure",
        "buying_power",
        "loss_limits",
        "max_open_orders",
        "order_rate",
        "duplicate_order",
    ]
    assert all(isinstance(v, str) for c in rep.checks for v in c.numbers.values())


@pytest.mark.parametrize("state", [TradingState.HALTED, TradingState.DISABLED])
def test_halted_and_disabled_reject(state: TradingState) -> None:
    assert "trading_state" in failed(RiskGate().check(req(), ctx(trading_state=state)))


def test_reducing_allows_only_reducing_orders() -> None:
    c = ctx(trading_state=TradingState.REDUCING, positions={"AAPL": Decimal(10)})
    assert "trading_state" in failed(RiskGate().check(req(OrderSide.BUY, "1"), c))
    assert RiskGate().check(req(OrderSide.SELL, "10"), c).passed
    assert "trading_state" in failed(RiskGate().check(req(OrderSide.SELL, "11"), c))


def test_order_gate_closed_after_reconnect_rejects() -> None:
    g = Gate()
    g.allowed, g.reason = False, "resync after reconnect"
    rep = RiskGate().check(req(), ctx(order_gate=g))
    assert "trading_state" in failed(rep) and "resync" in rep.explain()


def test_allow_and_deny_lists() -> None:
    assert "symbol_lists" in failed(
        RiskGate(RiskLimits(deny_symbols=frozenset({"AAPL"}))).check(req(), ctx())
    )
    assert "symbol_lists" in failed(
        RiskGate(RiskLimits(allow_symbols=frozenset({"MSFT"}))).check(req(), ctx())
    )


def test_tradable_shortable_and_missing_instrument_fail_closed() -> None:
    assert "tradable" in failed(RiskGate().check(req(), ctx(asset=None)))
    untradable = Asset("AAPL", "us_equity", "NASDAQ", False, True, True)
    assert "tradable" in failed(RiskGate().check(req(), ctx(asset=untradable)))
    no_short = Asset("AAPL", "us_equity", "NASDAQ", True, False, True)
    assert "tradable" in failed(RiskGate().check(req(OrderSide.SELL), ctx(asset=no_short)))
    assert (
        RiskGate().check(req(OrderSide.SELL, "5"), ctx(asset=no_short, positions={"AAPL": Decimal(5)})).passed
    )


def test_market_hours_vs_time_in_force() -> None:
    closed = ctx(hours=Hours(open_=False))
    assert "market_hours" in failed(RiskGate().check(req(tif=TimeInForce.IOC), closed))
    assert RiskGate().check(req(), closed).passed  # a DAY limit queues for the open
    assert "market_hours" in failed(RiskGate().check(req(price=None, extended_hours=True), ctx()))
    assert "market_hours" in failed(RiskGate().check(req(), ctx(hours=None)))


def test_max_order_qty_and_notional_always_enforced() -> None:
    assert "max_order_qty" in failed(RiskGate(RiskLimits(max_order_qty=Decimal(5))).check(req(), ctx()))
    rep = RiskGate(RiskLimits(max_order_notional=Decimal(999))).check(req(), ctx())
    [c] = [c for c in rep.failures if c.name == "max_order_notional"]
    assert c.numbers == {"notional": "1000", "limit": "999"}
    with pytest.raises(RiskLimitsError):
        RiskLimits(max_order_notional=Decimal(0))


def test_market_order_without_price_fails_closed() -> None:
    rep = RiskGate().check(req(price=None), ctx(prices=Prices(None, None)))
    assert {"max_order_notional", "price_band", "max_position", "exposure"} <= failed(rep)


def test_price_band_fat_finger_and_stale_quote() -> None:
    assert "price_band" in failed(RiskGate().check(req(price="106"), ctx()))  # > ask * 1.05
    assert RiskGate().check(req(price="105"), ctx()).passed
    assert "price_band" in failed(
        RiskGate().check(req(OrderSide.SELL, price="94"), ctx(positions={"AAPL": Decimal(10)}))
    )
    assert "price_band" in failed(RiskGate().check(req(), ctx(prices=Prices(stale=True))))


def test_max_position_post_trade() -> None:
    lim = RiskLimits(max_position_qty=Decimal(15))
    assert "max_position" in failed(RiskGate(lim).check(req(), ctx(positions={"AAPL": Decimal(10)})))
    assert RiskGate(lim).check(req(OrderSide.SELL), ctx(positions={"AAPL": Decimal(10)})).passed


def test_gross_and_net_exposure_post_trade() -> None:
    lim = RiskLimits(max_gross_exposure=Decimal(5000))
    rep = RiskGate(lim).check(req(), ctx(gross_exposure=Decimal(4500), net_exposure=Decimal(4500)))
    assert "exposure" in failed(rep)


def test_buying_power_and_missing_account_fail_closed() -> None:
    assert "buying_power" in failed(RiskGate().check(req(), ctx(account=account(buying_power=Decimal(500)))))
    assert {"buying_power", "loss_limits"} <= failed(RiskGate().check(req(), ctx(account=None)))
    assert "buying_power" in failed(RiskGate().check(req(), ctx(account=account(trading_blocked=True))))


def test_daily_loss_breach_moves_trading_state_and_allows_reducing() -> None:
    breaches: list[tuple[TradingState, str]] = []
    gate = RiskGate(RiskLimits(max_daily_loss=Decimal(1000)), on_breach=lambda s, r: breaches.append((s, r)))
    losing = account(equity=Decimal(98000), last_equity=Decimal(100000))
    assert "loss_limits" in failed(gate.check(req(), ctx(account=losing)))
    assert breaches and breaches[0][0] is TradingState.HALTED and "daily loss 2000" in breaches[0][1]
    assert gate.check(req(OrderSide.SELL, "5"), ctx(account=losing, positions={"AAPL": Decimal(5)})).passed


def test_drawdown_breach() -> None:
    breaches: list[Any] = []
    gate = RiskGate(
        RiskLimits(max_drawdown_pct=Decimal(5), loss_breach_state="REDUCING"),
        on_breach=lambda s, r: breaches.append(s),
    )
    rep = gate.check(req(), ctx(peak_equity=Decimal(110000)))  # equity 100000: 9.09 % drawdown
    assert "loss_limits" in failed(rep) and breaches == [TradingState.REDUCING]


def test_max_open_orders() -> None:
    assert "max_open_orders" in failed(
        RiskGate(RiskLimits(max_open_orders=3)).check(req(), ctx(open_orders=3))
    )


def test_order_rate_per_minute() -> None:
    gate = RiskGate(RiskLimits(max_orders_per_minute=2, duplicate_window_s=Decimal(0)))
    assert gate.check(req(), ctx()).passed
    assert gate.check(req(), ctx(now=NOW + timedelta(seconds=1))).passed
    assert "order_rate" in failed(gate.check(req(), ctx(now=NOW + timedelta(seconds=2))))
    assert gate.check(req(), ctx(now=NOW + timedelta(seconds=61))).passed


def test_duplicate_order_guard() -> None:
    gate = RiskGate()
    assert gate.check(req(), ctx()).passed
    assert "duplicate_order" in failed(gate.check(req(), ctx(now=NOW + timedelta(seconds=1))))
    assert gate.check(req(qty="11"), ctx(now=NOW + timedelta(seconds=1))).passed
    assert gate.check(req(), ctx(now=NOW + timedelta(seconds=5))).passed


def test_explain_names_rule_and_numbers() -> None:
    text = RiskGate(RiskLimits(max_order_qty=Decimal(5))).check(req(), ctx()).explain()
    assert text == "max_order_qty: order quantity (qty=10, limit=5)"


def test_limits_from_strings() -> None:
    lim = RiskLimits.from_strings(
        {"max_order_qty": "500", "deny_symbols": "gme, amc", "allow_short": "false", "max_open_orders": "7"}
    )
    assert (
        lim.max_order_qty == 500
        and lim.deny_symbols == {"GME", "AMC"}
        and not lim.allow_short
        and lim.max_open_orders == 7
    )
    with pytest.raises(RiskLimitsError, match="unknown risk limit 'max_qty'"):
        RiskLimits.from_strings({"max_qty": "1"})
    with pytest.raises(RiskLimitsError, match="max_order_notional = 'lots'"):
        RiskLimits.from_strings({"max_order_notional": "lots"})
    with pytest.raises(RiskLimitsError, match="must not be negative"):
        RiskLimits.from_strings({"max_order_qty": "-1"})
    with pytest.raises(RiskLimitsError):
        RiskLimits.from_strings({"max_daily_loss": "NaN"})


def test_preview_runs_every_check_but_records_nothing() -> None:
    breaches: list[TradingState] = []
    gate = RiskGate(RiskLimits(max_daily_loss=Decimal(1000)), on_breach=lambda s, r: breaches.append(s))
    previewed = gate.preview(req(), ctx())
    assert previewed.passed
    # typing in the ticket must not make the real submit a duplicate or use up the order rate
    assert gate.check(req(), ctx(now=NOW + timedelta(seconds=1))).passed
    assert "duplicate_order" in failed(gate.preview(req(), ctx(now=NOW + timedelta(seconds=2))))
    # a previewed loss-limit breach fails the check but does not move the trading state
    losing = account(equity=Decimal(98000), last_equity=Decimal(100000))
    assert "loss_limits" in failed(gate.preview(req(), ctx(account=losing)))
    assert breaches == []
    assert [c.name for c in previewed.checks] == [c.name for c in gate.check(req(qty="3"), ctx()).checks]
