"""Order flow like Alpaca's: the POST answer is the accepted order, fills follow on trade_updates.

Sources (verified, see docs/alpaca-rules.md "Order lifecycle" and "Replace"):
- Alpaca docs "Orders": ``POST /v2/orders`` answers with the order accepted (``accepted``,
  ``pending_new`` or ``new``); fills arrive afterwards as ``trade_updates`` events (``fill``,
  ``partial_fill``) carrying ``execution_id``, ``price``, ``qty`` and ``position_qty``; Alpaca
  recommends the stream for order state.
- Order entity docs and Alpaca-API #191: a notional order has ``qty: null`` ("entering a value for
  either parameter will automatically nullify the other").
- PATCH /v2/orders/{order_id} (Alpaca's Trading API reference): the replacement is a new order;
  "buying power is reduced by the larger of the two orders". docs/alpaca-rules.md "Replace (PATCH)":
  refused while ``accepted``/``pending_new``/``pending_cancel``/``pending_replace``, allowed when
  ``partially_filled``; its ``filled_qty`` starts at 0. Alpaca-API #165: a price-only replace of a
  partially filled order gives the replacement the original ``qty``, and a liquidating sell then
  fails for want of shares.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.exchange.errors import ApiError
from services.exchange.http.entities import order_json, trade_update_json
from services.exchange.http.order_requests import replace_json, submit_json
from services.exchange.orders import VenueOrder

from .test_venue_fakes import Rig, make_rig

ACCEPTED = ("accepted", "pending_new", "new")


@pytest.fixture
def r(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path, seed=7)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no random partials
    log: list[dict[str, Any]] = []
    rig.venue.hub.publish = lambda u: log.append(trade_update_json(u))  # type: ignore[method-assign]
    rig.venue.hub_log = log  # type: ignore[attr-defined]
    return rig


def log(r: Rig) -> list[dict[str, Any]]:
    return r.venue.hub_log  # type: ignore[attr-defined]


def submit(r: Rig, **body: Any) -> VenueOrder:
    base: dict[str, Any] = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}
    base.update(body)
    if "qty" not in base and "notional" not in base:
        base["qty"] = 10
    return r.venue.run(lambda: submit_json(r.venue.engine, base))


def partial_next(r: Rig, fraction: float) -> None:
    """The next execution is a partial fill of ``fraction`` of the remaining quantity."""
    rolls = iter([0.0])
    r.venue.engine.rng.random = lambda: next(rolls, 0.99)  # type: ignore[method-assign]
    r.venue.engine.rng.uniform = lambda a, b: fraction  # type: ignore[method-assign]
    r.venue.engine.rng.randint = lambda a, b: int(fraction * (b + 1))  # type: ignore[method-assign]


# ---- the POST answer, then the stream -----------------------------------------------------------
def test_marketable_order_is_answered_accepted_and_fills_after_the_answer(r: Rig) -> None:
    o = submit(r)
    answer = order_json(r.venue.engine, o)
    assert answer["status"] in ACCEPTED and answer["filled_qty"] == "0" and answer["filled_at"] is None
    assert [u["event"] for u in log(r)] == ["new"]
    assert "AAPL" not in r.venue.ledger.positions
    r.venue.match_pending()
    assert [u["event"] for u in log(r)] == ["new", "fill"]
    fill = log(r)[-1]
    assert len(fill["execution_id"]) == 36 and fill["price"] == "100.01"
    assert fill["qty"] == "10" and fill["position_qty"] == "10"
    assert fill["order"]["status"] == "filled" and o.status == "filled"


def test_matching_runs_on_the_loop_right_after_the_answer(tmp_path: Path) -> None:
    """No sweep, no quote: the venue itself schedules the match once the handler has its answer."""

    async def main() -> None:
        r = make_rig(tmp_path)
        r.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]
        seen: list[dict[str, Any]] = []
        r.venue.hub.publish = lambda u: seen.append(trade_update_json(u))  # type: ignore[method-assign]
        o = r.venue.run(lambda: submit_json(r.venue.engine,
            {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": 3}
        ))  # fmt: skip
        assert o.status in ACCEPTED
        await asyncio.sleep(0)  # one turn of the loop, no time passes on the fake clock
        assert o.status == "filled" and [u["event"] for u in seen] == ["new", "fill"]
        r.venue.store.close()

    asyncio.run(main())


def test_every_execution_has_its_own_id_and_running_position(r: Rig) -> None:
    partial_next(r, 0.4)
    o = submit(r, qty=10)
    r.venue.match_pending()
    assert o.status == "partially_filled" and o.filled_qty == 4
    r.quote("AAPL", "100.00", "100.02")
    assert o.status == "filled"
    fills = [u for u in log(r) if u["event"] in ("fill", "partial_fill")]
    assert [u["event"] for u in fills] == ["partial_fill", "fill"]
    assert [u["qty"] for u in fills] == ["4", "6"] and [u["position_qty"] for u in fills] == ["4", "10"]
    assert len({u["execution_id"] for u in fills}) == 2


def test_ioc_and_fok_resolve_right_after_the_answer(r: Rig) -> None:
    ioc = submit(r, type="limit", limit_price=100.05, time_in_force="ioc", qty=5)
    fok = submit(r, type="limit", limit_price=99.0, time_in_force="fok", qty=5)  # below the ask
    assert ioc.status in ACCEPTED and fok.status in ACCEPTED
    r.venue.match_pending()
    assert ioc.status == "filled" and ioc.filled_qty == 5
    assert fok.status == "canceled" and fok.filled_qty == 0
    assert [u["event"] for u in log(r)] == ["new", "new", "fill", "canceled"]


def test_ioc_remainder_is_canceled_after_its_partial_fill(r: Rig) -> None:
    partial_next(r, 0.4)
    o = submit(r, type="limit", limit_price=100.05, time_in_force="ioc", qty=10)
    r.venue.match_pending()
    assert o.status == "canceled" and o.filled_qty == 4
    assert [u["event"] for u in log(r)] == ["new", "partial_fill", "canceled"]


def test_an_ioc_accepted_before_a_crash_is_resolved_on_restart(tmp_path: Path) -> None:
    first = make_rig(tmp_path)
    o = first.venue.run(lambda: submit_json(first.venue.engine,
        {"symbol": "AAPL", "side": "buy", "type": "limit", "limit_price": 99.0, "time_in_force": "ioc",
         "qty": 2}
    ))  # fmt: skip
    first.venue.store.close()  # killed before the loop matched it
    second = make_rig(tmp_path)

    async def start() -> None:
        await second.venue.start()
        await second.venue.close()

    asyncio.run(start())
    assert second.venue.engine.orders[o.id].status == "canceled"


# ---- notional orders keep qty null --------------------------------------------------------------
def test_notional_order_keeps_qty_null_after_it_fills(r: Rig) -> None:
    o = submit(r, notional=250.5)
    r.venue.match_pending()
    body = order_json(r.venue.engine, o)
    assert body["status"] == "filled" and body["qty"] is None and body["notional"] == "250.5"
    assert body["filled_qty"] == "2.504749525"  # 250.5 / 100.01, cut to 9 places
    fill = log(r)[-1]
    assert fill["event"] == "fill" and fill["order"]["qty"] is None and fill["qty"] == body["filled_qty"]


def test_partially_filled_notional_order_works_its_remainder_and_keeps_its_reservation(r: Rig) -> None:
    partial_next(r, 0.5)
    o = submit(r, notional=1000)
    r.venue.match_pending()
    assert o.status == "partially_filled" and o.qty is None and o.filled_qty > 0
    assert order_json(r.venue.engine, o)["qty"] is None
    # What is still to buy keeps buying power reserved (about the other half of the notional).
    assert Decimal("499") < o.reserved < Decimal("501")
    r.quote("AAPL", "99.99", "100.01")
    assert o.status == "filled" and o.qty is None
    assert o.filled_qty == (Decimal(1000) / Decimal("100.01")).quantize(Decimal("1e-9"), "ROUND_DOWN")
    assert o.reserved == 0 and r.venue.engine.reserved_total == 0


def test_notional_sell_holds_its_shares_until_it_fills(r: Rig) -> None:
    submit(r, qty=10)
    r.venue.match_pending()
    sell = submit(r, side="sell", notional=500)
    assert sell.status in ACCEPTED
    # About 5 of the 10 shares are claimed by the working notional sell.
    held = r.venue.engine.held_for_orders("AAPL", "sell")
    assert Decimal("4.9") < held < Decimal("5.1")
    with pytest.raises(ApiError) as ei:
        submit(r, side="sell", qty=6)
    assert ei.value.status == 403


# ---- replace ------------------------------------------------------------------------------------
def test_a_partially_filled_order_can_be_replaced_and_the_replacement_starts_unfilled(r: Rig) -> None:
    o = submit(r, type="limit", limit_price=99.0, time_in_force="gtc", qty=10)
    r.venue.match_pending()
    partial_next(r, 0.3)
    r.quote("AAPL", "98.90", "98.95")
    assert o.status == "partially_filled" and o.filled_qty == 3
    new = r.venue.run(lambda: replace_json(r.venue.engine, o.id, {"limit_price": 97.0}))
    assert o.status == "replaced" and o.filled_qty == 3
    assert new.status in ACCEPTED and new.filled_qty == 0 and new.filled_avg_price is None
    assert new.qty == 10  # Alpaca-API #165: a price-only replace carries the original qty
    assert new.reserved == Decimal("970")


def test_replace_is_refused_while_the_order_is_not_yet_working(r: Rig) -> None:
    o = submit(r, type="limit", limit_price=90.0, time_in_force="gtc")
    for status in ("accepted", "pending_new", "pending_replace", "pending_cancel"):
        o.status = status
        with pytest.raises(ApiError) as ei:
            replace_json(r.venue.engine, o.id, {"limit_price": 91.0})
        assert ei.value.status == 422, status


def test_replace_never_flips_a_long_position(r: Rig) -> None:
    submit(r, qty=10)
    r.venue.match_pending()
    s = submit(r, side="sell", type="limit", limit_price=101.0, time_in_force="gtc", qty=10)
    r.venue.match_pending()
    partial_next(r, 0.4)
    r.quote("AAPL", "101.00", "101.02")
    assert s.status == "partially_filled" and r.venue.ledger.positions["AAPL"].qty == 6
    with pytest.raises(ApiError) as ei:  # the original 10 would sell 4 shares that are not held
        replace_json(r.venue.engine, s.id, {"limit_price": 102.0})
    assert ei.value.status == 403 and "insufficient qty" in ei.value.message
    new = r.venue.run(lambda: replace_json(r.venue.engine, s.id, {"qty": 6, "limit_price": 102.0}))
    assert new.qty == 6 and new.status in ACCEPTED


def test_replace_never_flips_a_short_position(r: Rig) -> None:
    submit(r, side="sell", qty=5)
    r.venue.match_pending()
    assert r.venue.ledger.positions["AAPL"].qty == -5
    cover = submit(r, side="buy", type="limit", limit_price=90.0, time_in_force="gtc", qty=5)
    with pytest.raises(ApiError) as ei:
        replace_json(r.venue.engine, cover.id, {"qty": 8})
    assert ei.value.status == 403 and "insufficient qty" in ei.value.message


def test_a_replaced_short_sale_is_checked_against_buying_power(tmp_path: Path) -> None:
    r = make_rig(tmp_path, cash="10000")
    short = r.venue.run(lambda: submit_json(r.venue.engine,
        {"symbol": "AAPL", "side": "sell", "type": "limit", "limit_price": 120.0, "time_in_force": "gtc",
         "qty": 10}
    ))  # fmt: skip
    assert short.opens_short
    with pytest.raises(ApiError) as ei:
        replace_json(r.venue.engine, short.id, {"qty": 500})
    assert ei.value.status == 403 and ei.value.message == "insufficient buying power"
    assert short.status == "new"
