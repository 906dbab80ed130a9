"""Ticket fields: numbers, symbols, order requests and the risk gate over arbitrary input.

Contract: bad input raises the domain's typed error (InvalidNumberError, InvalidSymbolError,
ValueError from OrderRequest) with a message; the risk gate never raises and explains every refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Account, Asset, OrderLegSpec, OrderRequest, Quote
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.risk.context import RiskContext
from services.risk.gate import RiskGate
from tests.fuzz.budget import fuzz_pair

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

number_text = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[ +-]?[0-9]{0,30}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,6})?\s*\Z"),
    st.sampled_from(["NaN", "-inf", "Infinity", "1e999999", "1_000", "٣", "0x10", "1,5", " 1 ", "", "-0"]),
)
anything = st.one_of(
    number_text, st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.none(),
    st.booleans(), st.decimals(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=2),
    st.binary(max_size=8),
)  # fmt: skip


def prop_to_decimal(value: Any) -> None:
    try:
        d = to_decimal(value, field="qty")
    except InvalidNumberError as exc:
        assert "qty" in str(exc)
        return
    assert isinstance(d, Decimal) and d.is_finite()


test_to_decimal, test_to_decimal_deep = fuzz_pair(anything, examples=250)(prop_to_decimal)


def prop_normalize_symbol(text: Any) -> None:
    try:
        sym = normalize_symbol(text)
    except InvalidSymbolError as exc:
        assert str(exc)
        return
    assert sym and sym == sym.strip() and normalize_symbol(sym) == sym


symbol_text = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\A\s*[A-Za-z]{1,6}([./-][A-Za-z]{1,5})?\s*\Z"),
    st.none(), st.integers(), st.binary(max_size=6),
)  # fmt: skip
test_normalize_symbol, test_normalize_symbol_deep = fuzz_pair(symbol_text, examples=250)(
    prop_normalize_symbol
)


class _Prices:
    def __init__(self, bid: Decimal | None, ask: Decimal | None, stale: bool) -> None:
        self.q = None if bid is None or ask is None else Quote("AAPL", bid, ask, Decimal(1), Decimal(1), NOW)
        self.stale = stale

    def quote(self, symbol: str) -> Quote | None:
        return self.q

    def last_price(self, symbol: str) -> Decimal | None:
        return self.q.mid if self.q else None

    def is_stale(self, symbol: str) -> bool:
        return self.stale

    def prev_close(self, symbol: str) -> Decimal | None:
        return None


class _Hours:
    def __init__(self, open_: bool) -> None:
        self.open_ = open_

    def is_open(self, ts: datetime) -> bool:
        return self.open_

    def is_extended(self, ts: datetime) -> bool:
        return False


price = st.one_of(st.none(), st.decimals(min_value=Decimal("-10"), max_value=Decimal("1e12"), places=6))
qty = st.one_of(st.none(), st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e12"), places=9))


@st.composite
def ticket(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "symbol": draw(symbol_text),
        "side": draw(st.sampled_from([*OrderSide, "hold"])),
        "type": draw(st.sampled_from([*OrderType, "iceberg"])),
        "tif": draw(st.sampled_from([*TimeInForce, "forever"])),
        "qty": draw(st.one_of(number_text, qty)),
        "notional": draw(st.one_of(st.none(), number_text)),
        "limit": draw(st.one_of(price, number_text)),
        "stop": draw(price),
        "trail_percent": draw(price),
        "class": draw(st.sampled_from(list(OrderClass))),
        "tp": draw(price),
        "sl": draw(price),
        "extended": draw(st.booleans()),
    }


def build_request(t: dict[str, Any]) -> OrderRequest:
    """The ticket's path from text fields to an OrderRequest; raises ValueError subclasses only."""

    def num(v: Any, field: str) -> Decimal | None:
        return None if v is None else to_decimal(v, field=field)

    return OrderRequest(
        symbol=normalize_symbol(t["symbol"]),
        side=OrderSide(t["side"]),
        type=OrderType(t["type"]),
        time_in_force=TimeInForce(t["tif"]),
        qty=num(t["qty"], "qty"),
        notional=num(t["notional"], "notional"),
        limit_price=num(t["limit"], "limit price"),
        stop_price=num(t["stop"], "stop price"),
        trail_percent=num(t["trail_percent"], "trail percent"),
        extended_hours=t["extended"],
        order_class=t["class"],
        take_profit=OrderLegSpec(limit_price=t["tp"]) if t["tp"] is not None else None,
        stop_loss=OrderLegSpec(stop_price=t["sl"]) if t["sl"] is not None else None,
    )


ACCOUNT = Account(
    id="a", account_number="1", status="ACTIVE", currency="USD", cash=Decimal(100000), equity=Decimal(100000),
    last_equity=Decimal(100000), buying_power=Decimal(200000),
)  # fmt: skip


@st.composite
def context(draw: st.DrawFn) -> RiskContext:
    bid = draw(price)
    ask = draw(price)
    sym = draw(st.sampled_from(["AAPL", "BTC/USD", "MSFT"]))
    return RiskContext(
        now=NOW,
        trading_state=draw(st.sampled_from(list(TradingState))),
        account=draw(st.sampled_from([ACCOUNT, None])),
        asset=draw(st.sampled_from([Asset(sym, "us_equity", "NASDAQ", True, True, True), None])),
        prices=_Prices(bid, ask, draw(st.booleans())),
        positions={sym: draw(st.decimals(min_value=-1000, max_value=1000, places=2))},
        gross_exposure=draw(st.decimals(min_value=0, max_value=Decimal("1e9"), places=2)),
        net_exposure=draw(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2)),
        open_orders=draw(st.integers(min_value=0, max_value=500)),
        hours=draw(st.sampled_from([_Hours(True), _Hours(False), None])),
        reduce_only=draw(st.booleans()),
    )


def prop_ticket_to_risk_gate(t: dict[str, Any], ctx: RiskContext) -> None:
    try:
        request = build_request(t)
    except ValueError as exc:  # InvalidNumberError, InvalidSymbolError, bad enum, qty/notional
        assert str(exc)
        return
    report = RiskGate().check(request, ctx)
    if not report.passed:
        assert report.failures and report.explain().strip()
    if ctx.account is None or ctx.asset is None or ctx.prices.quote("x") is None:
        assert not report.passed  # fail closed


test_ticket_to_risk_gate, test_ticket_to_risk_gate_deep = fuzz_pair(ticket(), context(), examples=200)(
    prop_ticket_to_risk_gate
)
