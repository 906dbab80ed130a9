"""Working orders count in the engine's risk context (FakeBroker behaving as Alpaca documents).

Alpaca holds buying power for open buy orders and open short sales and holds the shares of open sell
orders ("Orders at Alpaca", Buying Power; a second exit beyond the position is refused as
"exceeding the available position quantity", Bracket Orders). Heron's limits hold for the same worst
case: every working order on a side fills.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.orders.transitions import OrderState
from services.risk.limits import RiskLimits
from tests.unit.orders.conftest import Rig, db, rig  # noqa: F401  (fixtures)

D = Decimal


def limit(side: OrderSide, qty: str, price: str, symbol: str = "AAPL", **kw: object) -> OrderRequest:
    return OrderRequest(
        symbol, side, OrderType.LIMIT, TimeInForce.DAY, qty=D(qty), limit_price=D(price), **kw
    )  # type: ignore[arg-type]


def test_two_resting_buys_of_80_do_not_both_pass_a_100_share_limit(rig: Rig) -> None:  # noqa: F811
    rig.engine.risk.set_limits(RiskLimits(max_position_qty=D(100)))
    first = asyncio.run(rig.engine.submit(limit(OrderSide.BUY, "80", "99")))
    assert first.accepted, first.message
    second = asyncio.run(rig.engine.submit(limit(OrderSide.BUY, "80", "98")))
    assert second.state is OrderState.DENIED
    assert "max_position" in second.message and "post_trade_qty=160" in second.message


def test_a_working_short_sale_counts_in_gross_exposure(rig: Rig) -> None:  # noqa: F811
    rig.engine.risk.set_limits(RiskLimits(max_gross_exposure=D(35000)))
    short = asyncio.run(rig.engine.submit(limit(OrderSide.SELL, "300", "100.5")))
    assert short.accepted, short.message
    ctx = rig.engine.risk_context(limit(OrderSide.BUY, "1", "200", "MSFT"), None)
    assert ctx.pending_sells == {"AAPL": D(300)} and ctx.gross_exposure == D(30000)
    buy = asyncio.run(rig.engine.submit(limit(OrderSide.BUY, "50", "200", "MSFT")))
    assert buy.state is OrderState.DENIED and "exposure" in buy.message


def test_bracket_exits_count_once_and_only_for_what_the_entry_filled(rig: Rig) -> None:  # noqa: F811
    """[Orders at Alpaca, Bracket Orders]: "only one of the two exit orders can be executed"."""
    rig.engine.risk.set_limits(RiskLimits(allow_short=False))
    bracket = limit(
        OrderSide.BUY,
        "100",
        "100",
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=D(105)),
        stop_loss=OrderLegSpec(stop_price=D(95)),
    )
    res = asyncio.run(rig.engine.submit(bracket))
    assert res.accepted, res.message
    probe = limit(OrderSide.SELL, "1", "100")
    ctx = rig.engine.risk_context(probe, None)
    assert ctx.pending_buys == {"AAPL": D(100)} and ctx.pending_sells.get("AAPL", D(0)) == 0
    assert ctx.open_orders == 1
    rig.broker.fill(rig.broker.by_client[res.client_order_id or ""], D(100), D(100))
    ctx = rig.engine.risk_context(probe, None)
    assert rig.store.position_qty("AAPL") == 100
    assert ctx.pending_sells == {"AAPL": D(100)} and ctx.pending_buys.get("AAPL", D(0)) == 0
    # the exits already cover the position: another sell of 50 would open a short if all fill
    sell = asyncio.run(rig.engine.submit(limit(OrderSide.SELL, "50", "99.9")))
    assert sell.state is OrderState.DENIED and "tradable" in sell.message
