"""Property tests: random order and quote sequences never break the matching engine's invariants."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.domain.calendar import MarketCalendar
from services.exchange.errors import ApiError
from services.exchange.http.order_requests import replace_json, submit_json
from services.exchange.ledger import Ledger
from services.exchange.matching import MatchingEngine
from tests.support.clock import ManualClock

from .test_venue_fakes import T0, FakeMarket, instruments

START = Decimal(1_000_000)

quote_op = st.tuples(st.just("quote"), st.integers(min_value=-300, max_value=300))
order_op = st.tuples(
    st.just("order"),
    st.fixed_dictionaries(
        {
            "side": st.sampled_from(["buy", "sell"]),
            "type": st.sampled_from(["market", "limit", "stop", "trailing_stop"]),
            "qty": st.integers(min_value=1, max_value=30),
            "offset": st.integers(min_value=-200, max_value=200),
            "tif": st.sampled_from(["day", "gtc", "ioc", "fok"]),
            "klass": st.sampled_from(["simple", "simple", "bracket", "oco", "oto"]),
        }
    ),
)
cancel_op = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=10_000))
replace_op = st.tuples(st.just("replace"), st.integers(min_value=0, max_value=10_000))
ops = st.lists(st.one_of(quote_op, order_op, cancel_op, replace_op), min_size=1, max_size=60)


def body_for(spec: dict[str, Any], mid: Decimal) -> dict[str, Any]:
    cents = Decimal(spec["offset"]) / 100
    price = mid + cents
    b: dict[str, Any] = {"symbol": "AAPL", "side": spec["side"], "type": spec["type"], "qty": spec["qty"]}
    b["time_in_force"] = spec["tif"]
    if spec["type"] == "limit":
        b["limit_price"] = str(price)
    elif spec["type"] == "stop":
        b["stop_price"] = str(price)
    elif spec["type"] == "trailing_stop":
        b["trail_price"] = str(abs(cents) + Decimal("0.05"))
    k = spec["klass"]
    if k != "simple":
        b["order_class"] = k
        b["time_in_force"] = "gtc"
        up, down = str(mid + Decimal(3)), str(mid - Decimal(3))
        sell = spec["side"] == "sell"
        if k == "oco":
            b["type"] = "limit"
            b.pop("limit_price", None)
            b.pop("stop_price", None)
            b.pop("trail_price", None)
            b["take_profit"] = {"limit_price": down if not sell else up}
            b["stop_loss"] = {"stop_price": up if not sell else down}
        else:
            b["type"] = "limit" if spec["type"] == "limit" else "market"
            if b["type"] == "market":
                b.pop("limit_price", None)
            b.pop("stop_price", None)
            b.pop("trail_price", None)
            base = Decimal(b.get("limit_price", mid))
            tp = str(base + Decimal(3) if not sell else base - Decimal(3))
            sl = str(base - Decimal(3) if not sell else base + Decimal(3))
            b["take_profit"] = {"limit_price": tp}
            if k == "bracket":
                b["stop_loss"] = {"stop_price": sl}
            else:
                del b["take_profit"]
                b["stop_loss"] = {"stop_price": sl}
    return b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=ops, seed=st.integers(min_value=0, max_value=2**16))
def test_engine_invariants(seq: list[tuple[str, Any]], seed: int) -> None:
    clock = ManualClock(T0)
    market = FakeMarket(clock)
    mid = Decimal(100)
    market.set("AAPL", str(mid - Decimal("0.01")), str(mid + Decimal("0.01")))
    ledger = Ledger(account_id="a", cash=START)
    eng = MatchingEngine(
        universe=instruments(),
        market=market,
        calendar=MarketCalendar(always_open=True),
        ledger=ledger,
        clock=clock,
        seed=seed,
    )
    eng.rng.random = _biased(eng.rng.random)  # type: ignore[method-assign]  # more partial fills than 10 %
    seen_filled: dict[str, Decimal] = {}
    for op, arg in seq:
        clock.advance(seconds=1)
        try:
            if op == "quote":
                mid = max(Decimal(1), mid + Decimal(arg) / 100)
                spread = Decimal("0.01") * (1 + abs(arg) % 5)
                market.set("AAPL", str(mid - spread), str(mid + spread))
                eng.on_quote("AAPL")
            elif op == "order":
                submit_json(eng, body_for(arg, mid))
            elif op in ("cancel", "replace"):
                open_orders = [o for o in eng.orders.values() if o.is_open]
                if open_orders:
                    target = open_orders[arg % len(open_orders)]
                    if op == "cancel":
                        eng.cancel(target.id)
                    else:
                        replace_json(eng, target.id, {"qty": 1 + arg % 20})
        except ApiError as e:
            assert e.status in (403, 404, 422)
        check(eng, ledger, seen_filled)


def _biased(rnd: Any) -> Any:
    def draw() -> float:
        return float(rnd()) * 0.4  # a quarter of eligible fills are partial

    return draw


def check(eng: MatchingEngine, ledger: Ledger, seen: dict[str, Decimal]) -> None:
    # No overfill; filled qty only grows.
    for o in eng.orders.values():
        if o.qty is not None:
            assert 0 <= o.filled_qty <= o.qty
        assert o.filled_qty >= seen.get(o.id, Decimal(0))
        seen[o.id] = o.filled_qty
        if o.status == "filled":
            assert o.filled_qty == o.qty
    # Cash plus position value at fill prices is conserved; positions equal the signed fills.
    cash_flow = Decimal(0)
    pos = Decimal(0)
    for a in ledger.activities:
        signed = Decimal(a["qty"]) * (1 if a["side"] == "buy" else -1)
        cash_flow += signed * Decimal(a["price"])
        pos += signed
    assert ledger.cash + cash_flow == START
    assert ledger.position_qty("AAPL") == pos
    # OCO siblings never both filled; bracket/OTO legs never trade before the parent filled.
    for o in eng.orders.values():
        for sib in o.oco_ids:
            other = eng.orders[sib]
            assert not (o.filled_qty > 0 and other.filled_qty > 0), (o, other)
        if o.parent_id is not None and o.order_class in ("bracket", "oto"):
            parent = eng.orders[o.parent_id]
            if o.filled_qty > 0 or o.status not in ("held", "canceled", "expired", "replaced"):
                assert parent.status == "filled", (parent.status, o.status)
            if parent.status != "filled":
                assert o.status in ("held", "canceled", "expired", "replaced")
    # The matcher's index holds exactly the open, non-held orders.
    indexed = {i for book in eng.resting.values() for i in book}
    expected = {o.id for o in eng.orders.values() if o.is_open and o.status != "held"}
    assert indexed == expected
    assert abs(eng.reserved_total - sum(o.reserved for o in eng.orders.values())) < Decimal("1e-6")
