"""Alpaca's account rules, through real alpaca-py against the local exchange subprocess.

Sources (the unit tests in tests/unit/exchange/test_account_rules.py quote them at length):
- [MARGIN] docs.alpaca.markets "Margin and Short Selling": $2,000 for margin and shorts, 2x Reg T,
  4x intraday from $25,000, crypto not marginable, PDT checks ignore crypto.
- [SPEC] account entity, docs.alpaca.markets/reference (multiplier, buying_power,
  daytrade_count); Alpaca-API #112 (a paper account at multiplier 4, not flagged PDT).
- [NOTES] Alpaca API v2 "Notes on Orders and Positions" (alpacahq/user-docs): easy-to-borrow
  shorts only, no buy (sell) while flat with a pending short sale (buy); 403.
- [ORD] "Orders at Alpaca", Buying Power: short sale value MAX(limit, 1.03 x ask) x qty.
- [PAPER] paper trading: the 4th day trade in 5 business days refused under $25,000; 403 40310100
  "trade denied due to pattern day trading protection".
- [SHORT] alpaca-trade-api-js #57: 403 "account is not allowed to short".
- [CRYPTO] docs/alpaca-rules.md "Crypto" / "Order types": 422 "invalid order type for crypto order",
  403 "cost basis must be >= minimal amount of order 10" (stocks: 1), 403 "insufficient balance for
  USD (requested: X, available: Y)".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopOrderRequest,
)

from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for


def _client(ex: ExchangeProcess) -> TradingClient:
    c = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
    c._retry = 0
    return c


def _refused(client: TradingClient, request: Any) -> APIError:
    with pytest.raises(APIError) as err:
        client.submit_order(request)
    return err.value


def _market(
    symbol: str,
    side: OrderSide,
    qty: float | None = None,
    notional: float | None = None,
    tif: TimeInForce = TimeInForce.DAY,
) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, notional=notional, side=side, time_in_force=tif)


def _position_qty(client: TradingClient, symbol: str) -> float:
    for p in client.get_all_positions():
        if p.symbol == symbol:  # type: ignore[union-attr]
            return float(p.qty)  # type: ignore[union-attr]
    return 0.0


@pytest.fixture
def client(module_exchange_clean: ExchangeProcess) -> TradingClient:
    c = _client(module_exchange_clean)
    c.cancel_orders()
    c.close_all_positions(cancel_orders=True)
    wait_for("not c.get_all_positions()", lambda: not c.get_all_positions(), 10)
    return c


@pytest.fixture
def small_margin() -> Iterator[TradingClient]:
    """A margin account that starts with $10,000: 2x, and under the PDT threshold."""
    ex = ExchangeProcess.start(extra_args=["--cash", "10000"])
    try:
        yield _client(ex)
    finally:
        ex.stop()


def test_default_margin_account_reports_4x_and_refuses_hard_to_borrow_shorts(client: TradingClient) -> None:
    """[MARGIN]/[SPEC] 100,000 margin account: multiplier 4, buying power 4x; [NOTES] GME (hard to
    borrow) and HTBX (not shortable) short sales are 403."""
    acct: Any = client.get_account()
    assert acct.multiplier == "4" and acct.shorting_enabled
    assert float(acct.daytrading_buying_power) == pytest.approx(4 * float(acct.equity), rel=1e-6)
    assert float(acct.regt_buying_power) == pytest.approx(2 * float(acct.equity), rel=1e-6)
    for symbol in ("GME", "HTBX"):
        err = _refused(client, _market(symbol, OrderSide.SELL, qty=1))
        assert err.status_code == 403 and err.message == f'asset "{symbol}" cannot be sold short'


def test_short_sale_value_and_opposite_pending_orders(client: TradingClient) -> None:
    """[ORD] a short sale is checked at MAX(limit, 1.03 x ask) x qty; [NOTES] flat with a pending short
    sale, a buy is 403 (and a sell with a pending buy)."""
    bp_before = float(client.get_account().buying_power)  # type: ignore[union-attr]
    short: Any = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=1_000,
        )
    )
    held = bp_before - float(client.get_account().buying_power)  # type: ignore[union-attr]
    assert held == pytest.approx(10 * 1_000, rel=1e-6)  # the limit is above 1.03 x ask
    err = _refused(
        client,
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=1,
        ),
    )
    assert err.status_code == 403 and err.message == "potential wash trade detected. use complex orders"
    client.cancel_order_by_id(short.id)
    client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=1,
        )
    )
    err = _refused(client, _market("AAPL", OrderSide.SELL, qty=1))
    assert err.status_code == 403


def test_crypto_order_types_minimum_and_cash(client: TradingClient) -> None:
    """[CRYPTO] stop is 422 "invalid order type for crypto order"; under $10 is 403; a buy beyond cash
    is 403 "insufficient balance for USD" even with 4x stock buying power. Stocks: notional >= $1."""
    err = _refused(
        client,
        StopOrderRequest(
            symbol="BTC/USD",
            qty=0.01,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            stop_price=1_000_000,
        ),
    )
    assert err.status_code == 422 and err.message == "invalid order type for crypto order"
    err = _refused(client, _market("BTC/USD", OrderSide.BUY, notional=5, tif=TimeInForce.GTC))
    assert err.status_code == 403 and err.message == "cost basis must be >= minimal amount of order 10"
    cash = float(client.get_account().cash)  # type: ignore[union-attr]
    err = _refused(client, _market("BTC/USD", OrderSide.BUY, notional=cash + 1000, tif=TimeInForce.GTC))
    assert err.status_code == 403 and err.message.startswith("insufficient balance for USD (requested: ")
    err = _refused(client, _market("AAPL", OrderSide.BUY, notional=0.5))
    assert err.status_code == 403 and err.message == "cost basis must be >= minimal amount of order 1"


def test_pdt_protection_under_25k(small_margin: TradingClient) -> None:
    """[PAPER] the 4th day trade within 5 business days is refused under $25,000 (403 40310100);
    [SPEC] daytrade_count; [MARGIN] 2x buying power for a $10,000 margin account."""
    client = small_margin
    acct: Any = client.get_account()
    assert acct.multiplier == "2" and float(acct.buying_power) == pytest.approx(20_000)
    for n in range(3):
        client.submit_order(_market("AAPL", OrderSide.BUY, qty=1))
        wait_for('_position_qty(client, "AAPL") == 1', lambda: _position_qty(client, "AAPL") == 1, 10)
        client.submit_order(_market("AAPL", OrderSide.SELL, qty=1))
        wait_for('_position_qty(client, "AAPL") == 0', lambda: _position_qty(client, "AAPL") == 0, 10)
        wait_for(
            "client.get_account().daytrade_count == n + 1",
            lambda n=n: client.get_account().daytrade_count == n + 1,
            10,
        )  # type: ignore[union-attr]
    client.submit_order(_market("AAPL", OrderSide.BUY, qty=1))
    wait_for('_position_qty(client, "AAPL") == 1', lambda: _position_qty(client, "AAPL") == 1, 10)
    err = _refused(client, _market("AAPL", OrderSide.SELL, qty=1))
    assert err.status_code == 403 and err.code == 40310100
    assert err.message == "trade denied due to pattern day trading protection"


def test_cash_account_cannot_short() -> None:
    """[MARGIN] a cash account has 1x buying power and cannot short; [SHORT] the 403 message."""
    with ExchangeProcess(extra_args=["--account-type", "cash"]) as ex:
        ex._spawn()
        client = _client(ex)
        acct: Any = client.get_account()
        assert acct.multiplier == "1" and not acct.shorting_enabled
        assert float(acct.buying_power) == pytest.approx(float(acct.cash))
        err = _refused(client, _market("AAPL", OrderSide.SELL, qty=1))
        assert err.status_code == 403 and err.message == "account is not allowed to short"
