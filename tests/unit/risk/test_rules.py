"""One test per risk rule: the rule refuses on its own, and the gate reports that same refusal (so a
rule taken out of :data:`RULES` fails its test)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Asset, OrderLegSpec, OrderRequest
from services.risk import rules, venue_rules
from services.risk.context import CheckResult, RiskContext
from services.risk.facts import RuleInput, order_facts
from services.risk.gate import RiskGate
from services.risk.limits import RiskLimits
from services.risk.rules import RULES, Rule
from tests.unit.risk.test_gate import NOW, Gate, Hours, Prices, account, ctx, req


def rule_input(
    request: OrderRequest, c: RiskContext, limits: RiskLimits | None = None, **kw: Any
) -> RuleInput:
    lim = limits or RiskLimits()
    base: dict[str, Any] = dict(
        ctx=c,
        facts=order_facts(request, c),
        limits=lim,
        band_up=1 + lim.price_band_pct / 100,
        band_down=1 - lim.price_band_pct / 100,
        drawdown=lim.max_drawdown_pct / 100,
        recent=0,
        last_orders=(),
        on_breach=None,
    )
    base.update(kw)
    return RuleInput(**base)


def refuses(
    rule: Rule, request: OrderRequest, c: RiskContext, detail: str, *, gate: RiskGate | None = None
) -> CheckResult:
    """The rule alone refuses with ``detail``, and the gate's report carries the same refusal."""
    gate = gate or RiskGate()
    alone = rule(request, rule_input(request, c, gate.limits))
    assert alone is not None and not alone.passed and alone.detail == detail, alone
    report = gate.check(request, c, record=False)
    assert alone in report.failures, report.explain()
    return alone


def test_the_gate_runs_the_rules_in_a_fixed_order() -> None:
    assert [r.__name__ for r in RULES] == [
        "trading_state",
        "reduce_only",
        "symbol_lists",
        "tradable",
        "market_hours",
        "order_type",
        "price_increment",
        "stop_side",
        "order_legs",
        "qty_available",
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


def test_every_rule_passes_a_plain_order() -> None:
    request, c = req(), ctx()
    results = [rule(request, rule_input(request, c)) for rule in RULES]
    assert all(r is None or r.passed for r in results), results


def test_trading_state() -> None:
    refuses(rules.trading_state, req(), ctx(trading_state=TradingState.HALTED), "HALTED: no new orders")
    gate = Gate()
    gate.allowed, gate.reason = False, "resyncing"
    refuses(rules.trading_state, req(), ctx(order_gate=gate), "orders paused: resyncing")


def test_reduce_only() -> None:
    assert rules.reduce_only(req(), rule_input(req(), ctx())) is None
    refuses(rules.reduce_only, req(), ctx(reduce_only=True), "order marked reduce-only would not reduce")


def test_symbol_lists() -> None:
    gate = RiskGate(RiskLimits(deny_symbols=frozenset({"AAPL"})))
    refuses(rules.symbol_lists, req(), ctx(), "AAPL is on the deny list", gate=gate)


def test_tradable() -> None:
    refuses(rules.tradable, req(), ctx(asset=None), "no instrument data for AAPL (fail closed)")
    not_shortable = Asset("AAPL", "us_equity", "NASDAQ", True, False, True)
    refuses(
        rules.tradable,
        req(OrderSide.SELL),
        ctx(asset=not_shortable),
        "AAPL: order would open or increase a short (if every working sell fills)"
        " and shorting is not allowed",
    )


def test_market_hours() -> None:
    refuses(rules.market_hours, req(), ctx(hours=None), "no market calendar (fail closed)")
    refuses(
        rules.market_hours,
        req(tif=TimeInForce.IOC),
        ctx(hours=Hours(open_=False)),
        "market closed: ioc would expire at once",
    )


def test_order_type() -> None:
    refuses(
        venue_rules.order_type,
        req(type=OrderType.TRAILING_STOP, price=None, tif=TimeInForce.IOC, trail_price=Decimal(1)),
        ctx(),
        "a trailing stop's time in force must be day or gtc, not ioc",
    )


def test_price_increment() -> None:
    refuses(
        venue_rules.price_increment,
        req(price="100.001"),
        ctx(),
        "limit_price is a sub-penny increment: Alpaca takes 2 decimals at $1.00 and above",
    )


def test_stop_side() -> None:
    refuses(
        venue_rules.stop_side,
        req(type=OrderType.STOP, price=None, stop_price=Decimal(99)),
        ctx(),
        "a buy stop must be above the market (it would trigger at once)",
    )


def test_order_legs() -> None:
    bracket = req(
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=Decimal(110)),
        stop_loss=OrderLegSpec(stop_price=Decimal(120)),
    )
    refuses(
        venue_rules.order_legs, bracket, ctx(), "take-profit must be above the stop-loss when exiting a long"
    )


def test_min_order_value() -> None:
    refuses(
        venue_rules.min_order_value,
        req(qty="0.005"),
        ctx(),
        "order value under Alpaca's minimum of $1",
    )


def test_max_order_qty() -> None:
    gate = RiskGate(RiskLimits(max_order_qty=Decimal(5)))
    refuses(rules.max_order_qty, req(), ctx(), "order quantity", gate=gate)


def test_max_order_notional() -> None:
    refuses(rules.max_order_notional, req(qty="1000"), ctx(), "order notional")


def test_price_band() -> None:
    refuses(rules.price_band, req(price="106"), ctx(), "buy limit too far through the ask (fat finger)")
    refuses(rules.price_band, req(), ctx(prices=Prices(stale=True)), "quote for AAPL is stale (fail closed)")


def test_max_position() -> None:
    gate = RiskGate(RiskLimits(max_position_qty=Decimal(15)))
    refuses(
        rules.max_position,
        req(),
        ctx(positions={"AAPL": Decimal(10)}),
        "post-trade position if every working order on this side fills",
        gate=gate,
    )


def test_exposure() -> None:
    gate = RiskGate(RiskLimits(max_gross_exposure=Decimal(500)))
    refuses(
        rules.exposure,
        req(),
        ctx(),
        "post-trade gross and net exposure if every working order on this side fills",
        gate=gate,
    )


def test_buying_power() -> None:
    refuses(
        rules.buying_power,
        req(),
        ctx(account=account(buying_power=Decimal(500))),
        "order notional vs buying power",
    )
    refuses(rules.buying_power, req(), ctx(account=None), "no account data (fail closed)")


def test_loss_limits_refuse_and_report_the_breach() -> None:
    told: list[tuple[TradingState, str]] = []
    gate = RiskGate(on_breach=lambda state, why: told.append((state, why)))
    losing = ctx(account=account(equity=Decimal(94000)))
    refuses(rules.loss_limits, req(), losing, "daily loss 6000 reached the limit 5000", gate=gate)
    assert told == []  # a preview tells no one
    gate.check(req(), losing)
    assert told == [(TradingState.HALTED, "daily loss 6000 reached the limit 5000")]


def test_max_open_orders() -> None:
    gate = RiskGate(RiskLimits(max_open_orders=2))
    refuses(rules.max_open_orders, req(), ctx(open_orders=2), "open orders", gate=gate)


def test_order_rate() -> None:
    gate = RiskGate(RiskLimits(max_orders_per_minute=1))
    assert gate.check(req(qty="1"), ctx()).passed
    result = rules.order_rate(req(), rule_input(req(), ctx(), gate.limits, recent=1))
    assert not result.passed and result.numbers == {"count": "1", "limit": "1"}
    assert result in gate.check(req(), ctx(now=NOW + timedelta(seconds=30))).failures
    assert gate.check(req(), ctx(now=NOW + timedelta(seconds=61))).passed


def test_duplicate_order() -> None:
    gate = RiskGate()
    assert gate.check(req(), ctx()).passed
    sent = [(NOW, "AAPL", OrderSide.BUY, Decimal(10), Decimal(100))]
    result = rules.duplicate_order(req(), rule_input(req(), ctx(), last_orders=sent))
    assert not result.passed and result.detail == "same symbol/side/qty/price just sent"
    assert result in gate.check(req(), ctx(now=NOW + timedelta(seconds=1))).failures


# --- a close's closing order and the order size limits ---------------------------------------------
def test_a_closing_order_that_reduces_is_exempt_from_the_order_size_limits() -> None:
    from decimal import Decimal as D

    from services.domain.enums import OrderSide
    from services.risk.gate import RiskGate
    from services.risk.limits import RiskLimits
    from tests.unit.risk.test_gate import ctx, failed, req

    gate = RiskGate(RiskLimits(max_order_qty=D(5), max_order_notional=D(500)))
    sell_10 = req(OrderSide.SELL, qty="10", price=None)
    held = {"AAPL": D(10)}
    assert gate.check(sell_10, ctx(positions=held, closing=True)).passed
    # the same sell from the ticket, and a "close" that would flip the position, stay refused
    assert {"max_order_qty", "max_order_notional"} <= failed(gate.check(sell_10, ctx(positions=held)))
    flip = req(OrderSide.SELL, qty="15", price=None)
    assert "max_order_qty" in failed(gate.check(flip, ctx(positions=held, closing=True)))
