"""Bar builders and a recording intent sink for strategy tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.domain.models import Bar
from services.strategies.api import OrderIntent

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def bar(i: int, o: float, h: float, l: float, c: float, v: float = 1000, symbol: str = "AAPL") -> Bar:  # noqa: E741
    return Bar(
        symbol=symbol,
        ts=T0 + timedelta(minutes=i),
        open=Decimal(str(o)),
        high=Decimal(str(h)),
        low=Decimal(str(l)),
        close=Decimal(str(c)),
        volume=Decimal(str(v)),
    )


def closes(values: list[float], symbol: str = "AAPL", start: int = 0) -> list[Bar]:
    return [bar(start + i, c, c, c, c, symbol=symbol) for i, c in enumerate(values)]


class RecordingSink:
    """IntentSink that only records (the runner's contract is synchronous hand-off)."""

    def __init__(self) -> None:
        self.intents: list[OrderIntent] = []
        self.cancels: list[tuple[str, str]] = []

    def accept(self, intent: OrderIntent) -> None:
        self.intents.append(intent)

    def cancel(self, strategy: str, client_order_id: str) -> None:
        self.cancels.append((strategy, client_order_id))


def fill_update(
    intent: OrderIntent, price: str, *, qty: str | None = None, exec_id: str = "x1", kind: str = "fill"
):  # type: ignore[no-untyped-def]
    """A trade update filling ``intent`` (fully unless ``qty``) at ``price``."""
    from services.domain.enums import OrderStatus
    from services.domain.events import TradeUpdateEvent
    from services.domain.models import Order

    req = intent.request
    assert req.qty is not None and req.client_order_id is not None
    fill_qty = Decimal(qty) if qty is not None else req.qty
    ts = intent.ts or T0
    status = OrderStatus.FILLED if fill_qty == req.qty else OrderStatus.PARTIALLY_FILLED
    if kind != "fill" and kind != "partial_fill":
        status = OrderStatus(kind) if kind in {s.value for s in OrderStatus} else OrderStatus.REJECTED
    order = Order(
        id=f"o-{req.client_order_id}",
        client_order_id=req.client_order_id,
        symbol=req.symbol,
        side=req.side,
        type=req.type,
        time_in_force=req.time_in_force,
        status=status,
        qty=req.qty,
        filled_qty=fill_qty if kind in ("fill", "partial_fill") else Decimal(0),
        created_at=ts,
        updated_at=ts,
        submitted_at=ts,
    )
    is_fill = kind in ("fill", "partial_fill")
    return TradeUpdateEvent(
        ts=ts,
        event=kind,
        order=order,
        execution_id=exec_id if is_fill else None,
        price=Decimal(price) if is_fill else None,
        qty=fill_qty if is_fill else None,
    )
