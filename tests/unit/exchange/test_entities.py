"""Trade updates leave the venue typed (orders.TradeUpdate) and become Alpaca's JSON in the HTTP
layer (http/entities.py): each carries the order as it was when its event happened."""

from __future__ import annotations

import json
from pathlib import Path

from services.exchange.http.entities import order_json, trade_update_json
from services.exchange.http.order_requests import submit_json
from services.exchange.orders import TradeUpdate

from .test_venue_fakes import make_rig


def test_each_update_shows_the_order_as_it_was_then(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, seed=7)
    rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no random partials
    updates: list[TradeUpdate] = []
    rig.venue.hub.publish = updates.append  # type: ignore[method-assign]
    body = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": 2}
    o = rig.venue.run(lambda: submit_json(rig.venue.engine, body))
    rig.venue.match_pending()
    assert [u.event for u in updates] == ["new", "fill"]
    new, fill = (trade_update_json(u) for u in updates)
    assert new["order"]["status"] == "new" and new["order"]["filled_qty"] == "0"
    assert fill["order"]["status"] == "filled" and fill["order"]["filled_qty"] == "2"
    assert list(new) == ["event", "timestamp", "order"]
    assert list(fill) == ["event", "timestamp", "order", "execution_id", "price", "qty", "position_qty"]
    assert (fill["price"], fill["qty"], fill["position_qty"]) == ("100.01", "2", "2")
    assert fill["order"] == order_json(rig.venue.engine, o)
    assert json.loads(json.dumps(fill)) == fill  # enums and decimals are written as plain strings
    rig.venue.store.close()


def test_a_bracket_update_nests_its_legs(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, seed=7)
    updates: list[TradeUpdate] = []
    rig.venue.hub.publish = updates.append  # type: ignore[method-assign]
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "limit_price": "90", "time_in_force": "gtc",
            "qty": 1, "order_class": "bracket", "take_profit": {"limit_price": "120"},
            "stop_loss": {"stop_price": "80"}}  # fmt: skip
    o = rig.venue.run(lambda: submit_json(rig.venue.engine, body))
    first = trade_update_json(updates[0])
    assert first["order"]["id"] == o.id and first["order"]["order_class"] == "bracket"
    assert [leg["type"] for leg in first["order"]["legs"]] == ["limit", "stop"]
    assert order_json(rig.venue.engine, o, nested=False)["legs"] is None
    rig.venue.store.close()
