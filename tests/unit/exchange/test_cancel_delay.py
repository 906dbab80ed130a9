"""The admin cancel-delay knob: pending_cancel first, canceled after the delay, fills meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.exchange.errors import ApiError
from services.exchange.http.entities import trade_update_json
from services.exchange.http.order_requests import replace_json, submit_json
from services.exchange.orders import VenueOrder

from .test_venue_fakes import Rig, make_rig


@pytest.fixture
def r(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path, seed=5)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no random partials
    log: list[dict[str, Any]] = []
    rig.venue.hub.publish = lambda u: log.append(trade_update_json(u))  # type: ignore[method-assign]
    rig.venue.hub_log = log  # type: ignore[attr-defined]
    return rig


def _limit(r: Rig, price: float = 90.0) -> VenueOrder:
    body = {
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "qty": 10.0,
        "limit_price": price,
        "time_in_force": "gtc",
    }
    return r.venue.run(lambda: submit_json(r.venue.engine, body))


def _events(r: Rig) -> list[str]:
    return [u["event"] for u in r.venue.hub_log]  # type: ignore[attr-defined]


def test_without_delay_a_cancel_is_immediate(r: Rig) -> None:
    o = _limit(r)
    r.venue.run(lambda: r.venue.engine.cancel(o.id))
    assert o.status == "canceled" and _events(r)[-1] == "canceled"


def test_delayed_cancel_is_pending_then_canceled_after_the_delay(r: Rig) -> None:
    r.venue.set_cancel_delay(5)
    o = _limit(r)
    r.venue.run(lambda: r.venue.engine.cancel(o.id))
    assert o.status == "pending_cancel" and _events(r)[-1] == "pending_cancel"
    with pytest.raises(ApiError) as ei:  # a second cancel while pending is refused like Alpaca does
        r.venue.engine.cancel(o.id)
    assert ei.value.status == 422
    r.clock.advance(seconds=4)
    r.venue.sweep()
    assert o.status == "pending_cancel"
    r.clock.advance(seconds=2)
    r.venue.sweep()
    assert o.status == "canceled" and _events(r)[-1] == "canceled"
    assert o.id not in r.venue.engine.pending_cancels


def test_a_fill_may_arrive_while_the_cancel_is_pending(r: Rig) -> None:
    r.venue.set_cancel_delay(5)
    o = _limit(r, price=99.0)
    r.venue.run(lambda: r.venue.engine.cancel(o.id))
    r.quote("AAPL", "98.5", "98.9")  # marketable now: fills before the cancel completes
    assert o.status == "filled" and o.filled_qty == 10
    r.clock.advance(seconds=6)
    r.venue.sweep()
    assert o.status == "filled" and "canceled" not in _events(r)


def test_reset_to_zero_makes_cancels_instant_again(r: Rig) -> None:
    r.venue.set_cancel_delay(5)
    r.venue.set_cancel_delay(0)
    o = _limit(r)
    r.venue.run(lambda: r.venue.engine.cancel(o.id))
    assert o.status == "canceled"


def test_replace_race_fills_the_old_order_and_rejects_the_replacement(r: Rig) -> None:
    """Alpaca, PATCH /v2/orders/{order_id} (docs.alpaca.markets/reference): "If the
    existing open order is filled before the replacing (new) order reaches the execution venue, the
    replacing (new) order is rejected", and both events arrive on trade_updates. The admin knob
    makes the local exchange lose that race on purpose for chaos runs."""
    r.venue.set_replace_race(1)
    o = _limit(r, price=90.0)
    body = {"limit_price": 91.0, "client_order_id": "x-1"}
    new = r.venue.run(lambda: replace_json(r.venue.engine, o.id, body))
    assert o.status == "filled" and o.filled_qty == 10 and o.replaced_by is None
    assert new.status == "rejected" and new.replaces == o.id and new.filled_qty == 0
    assert _events(r)[-2:] == ["fill", "rejected"]
    assert r.venue.engine.replace_race_next == 0
    # the knob is consumed: the next replace is an ordinary one
    o2 = _limit(r, price=80.0)
    new2 = r.venue.run(lambda: replace_json(r.venue.engine, o2.id, {"limit_price": 81.0}))
    assert o2.status == "replaced" and new2.status in ("new", "accepted")


def test_shares_of_a_sell_stay_held_while_its_cancel_is_pending(r: Rig) -> None:
    """Alpaca docs "Orders", order lifecycle: ``pending_cancel`` is an order still waiting to be
    canceled, so it still claims its shares; they are free again only once it is ``canceled``."""
    r.venue.run(lambda: submit_json(r.venue.engine,
        {"symbol": "AAPL", "side": "buy", "type": "market", "qty": 10, "time_in_force": "day"}
    ))  # fmt: skip
    r.venue.match_pending()
    sell = {
        "symbol": "AAPL",
        "side": "sell",
        "type": "limit",
        "qty": 10,
        "limit_price": 200.0,
        "time_in_force": "gtc",
    }
    o = r.venue.run(lambda: submit_json(r.venue.engine, sell))
    r.venue.set_cancel_delay(5)
    r.venue.run(lambda: r.venue.engine.cancel(o.id))
    assert o.status == "pending_cancel"
    with pytest.raises(ApiError) as ei:
        r.venue.run(lambda: submit_json(r.venue.engine, sell))
    assert ei.value.status == 403 and "insufficient qty available" in ei.value.message
    r.clock.advance(seconds=6)
    r.venue.sweep()
    assert o.status == "canceled"
    assert r.venue.run(lambda: submit_json(r.venue.engine, sell)).status in ("accepted", "pending_new", "new")
