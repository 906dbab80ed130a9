"""Alpaca's order bodies (POST and PATCH /v2/orders) turned into typed requests for the venue.

Checks run in the order they always have, so a body with several faults is refused for the same
one; what needs the order book (the account, the quote, the position) is the engine's to check.
The JSON arrives with floats as text (``parse_float=str``), so numbers never pass through a float.
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Mapping
from decimal import Decimal
from typing import Any

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.exchange.contracts import Instrument
from services.exchange.errors import ApiError, unprocessable
from services.exchange.matching import MatchingEngine
from services.exchange.order_checks import check_number, check_qty_places, check_tradable, whole
from services.exchange.orders import VenueOrder
from services.exchange.requests import OrderRequest, ReplaceRequest, StopLoss, TakeProfit

SIDES = frozenset(OrderSide)
ORDER_TYPES = frozenset(OrderType)
TIFS = frozenset(TimeInForce)
ORDER_CLASSES = frozenset({OrderClass.SIMPLE, OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO})


def _text(value: Any) -> str | None:
    """An enum-like request field as text: non-strings become their repr, so they fail the
    membership check with a 422 instead of raising (a list is not even hashable)."""
    if value is None or isinstance(value, str):
        return value
    return repr(value)[:64]


def _num(body: Mapping[str, Any], key: str, *, positive: bool = True) -> Decimal | None:
    raw = body.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = to_decimal(raw, field=key)
    except InvalidNumberError as e:
        raise unprocessable(f"invalid {key}: {e}") from None
    return check_number(value, key, raw, positive=positive)


def _bool(raw: Any, key: str) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise unprocessable(f"invalid {key}: {raw!r}")


def instrument(universe: Mapping[str, Instrument], raw: Any) -> Instrument:
    """The instrument a request's ``symbol`` names (any spelling), or 422."""
    if not isinstance(raw, str) or not raw.strip():
        raise unprocessable("symbol is required")
    try:
        sym = normalize_symbol(raw)
    except InvalidSymbolError:
        raise unprocessable(f'asset "{raw}" not found') from None
    inst = universe.get(sym)
    if inst is None:
        raise unprocessable(f'asset "{raw}" not found')
    return inst


def _client_order_id(body: Mapping[str, Any], taken: Container[str]) -> str:
    coid = body.get("client_order_id")
    if coid is None or coid == "":
        coid = str(uuid.uuid4())
    if not isinstance(coid, str):
        raise unprocessable("client_order_id must be a string")
    if len(coid) > 48:
        raise unprocessable("client_order_id must be no more than 48 characters")
    if coid in taken:
        raise unprocessable("client_order_id must be unique")
    return coid


def _enums(body: Mapping[str, Any]) -> tuple[OrderSide, OrderType, TimeInForce, OrderClass]:
    side = _text(body.get("side"))
    if side not in SIDES:
        raise unprocessable(f"invalid side: {side!r}")
    otype = _text(body.get("type", body.get("order_type")))
    if otype not in ORDER_TYPES:
        raise unprocessable(f"invalid order type: {otype!r}")
    tif = _text(body.get("time_in_force"))
    if tif not in TIFS:
        raise unprocessable(f"invalid time_in_force: {tif!r}")
    oclass = _text(body.get("order_class")) or "simple"
    if oclass not in ORDER_CLASSES:
        raise unprocessable(f"order_class {oclass!r} is not supported")
    return OrderSide(side), OrderType(otype), TimeInForce(tif), OrderClass(oclass)


def _legs(body: Mapping[str, Any]) -> tuple[TakeProfit | None, StopLoss | None]:
    tp = body.get("take_profit")
    sl = body.get("stop_loss")
    if (tp is not None and not isinstance(tp, dict)) or (sl is not None and not isinstance(sl, dict)):
        raise unprocessable("take_profit and stop_loss must be objects")
    tp_limit = _num(tp, "limit_price") if tp else None
    sl_stop = _num(sl, "stop_price") if sl else None
    sl_limit = _num(sl, "limit_price") if sl else None
    return (
        TakeProfit(tp_limit) if tp is not None else None,
        StopLoss(sl_stop, sl_limit) if sl is not None else None,
    )


def parse_order(body: Any, universe: Mapping[str, Instrument], taken: Container[str]) -> OrderRequest:
    """POST /v2/orders: ``body`` (parsed JSON) as an :class:`OrderRequest`, or ApiError (422).
    ``taken``: the client order ids already in use."""
    if not isinstance(body, dict):
        raise unprocessable("request body must be a JSON object")
    inst = instrument(universe, body.get("symbol"))
    check_tradable(inst)
    side, otype, tif, oclass = _enums(body)
    qty = _num(body, "qty")
    notional = _num(body, "notional")
    if (qty is None) == (notional is None):
        raise unprocessable(
            "qty or notional is required" if qty is None else "qty and notional are exclusive"
        )
    if qty is not None:
        check_qty_places(qty)
    limit_price = _num(body, "limit_price")
    stop_price = _num(body, "stop_price")
    trail_price = _num(body, "trail_price")
    trail_percent = _num(body, "trail_percent")
    extended = _bool(body.get("extended_hours"), "extended_hours")
    coid = _client_order_id(body, taken)
    take_profit, stop_loss = _legs(body)
    return OrderRequest(
        instrument=inst,
        side=side,
        type=otype,
        time_in_force=tif,
        order_class=oclass,
        client_order_id=coid,
        qty=qty,
        notional=notional,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_price=trail_price,
        trail_percent=trail_percent,
        extended_hours=extended,
        take_profit=take_profit,
        stop_loss=stop_loss,
    )


def parse_replace(body: Mapping[str, Any], old: VenueOrder, taken: Container[str]) -> ReplaceRequest:
    """PATCH /v2/orders/{id}: ``body`` as a :class:`ReplaceRequest` for ``old``, or ApiError (422)."""
    qty = _num(body, "qty")
    if qty is not None and not whole(qty):
        raise unprocessable("qty must be a whole number")
    if qty is not None and old.qty is not None and not whole(old.qty):
        raise unprocessable("fractional orders cannot be replaced")
    tif = _text(body.get("time_in_force")) or old.time_in_force
    if tif not in TIFS:
        raise unprocessable(f"invalid time_in_force: {tif!r}")
    limit_price = _num(body, "limit_price")
    stop_price = _num(body, "stop_price")
    trail = _num(body, "trail")
    if limit_price is not None and old.type not in ("limit", "stop_limit"):
        raise unprocessable(f"limit_price is not allowed for {old.type} orders")
    if stop_price is not None and old.type not in ("stop", "stop_limit"):
        raise unprocessable(f"stop_price is not allowed for {old.type} orders")
    if trail is not None and old.type != "trailing_stop":
        raise unprocessable("trail is only for trailing_stop orders")
    coid = body.get("client_order_id") or str(uuid.uuid4())
    if not isinstance(coid, str) or len(coid) > 48:
        raise unprocessable("client_order_id must be no more than 48 characters")
    if coid in taken:
        raise unprocessable("client_order_id must be unique")
    return ReplaceRequest(
        client_order_id=coid,
        time_in_force=TimeInForce(tif),
        qty=qty,
        limit_price=limit_price,
        stop_price=stop_price,
        trail=trail,
    )


def submit_json(engine: MatchingEngine, body: Any) -> VenueOrder:
    """Place the order a POST /v2/orders body asks for; a refused body counts as a rejected order."""
    try:
        request = parse_order(body, engine.universe, engine.by_client_id)
    except ApiError:
        engine.counters["orders_rejected"] += 1
        raise
    return engine.submit(request)


def replace_json(engine: MatchingEngine, order_id: str, body: Any) -> VenueOrder:
    """Replace ``order_id`` as a PATCH /v2/orders/{order_id} body asks."""
    old = engine.get(order_id)
    if not isinstance(body, dict):
        raise unprocessable("request body must be a JSON object")
    engine.check_replaceable(old)
    return engine.replace(old, parse_replace(body, old, engine.by_client_id))
