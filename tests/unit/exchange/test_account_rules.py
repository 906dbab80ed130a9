"""Account rules of the paper account (services/exchange/rules.py and Ledger.margin), as Alpaca has them.

Sources, named again on each test:
- [MARGIN] Alpaca docs "Margin and Short Selling" (docs.alpaca.markets/docs/margin-and-short-selling):
  $2,000 equity for margin and shorts, 2x Reg T, 4x intraday from $25,000; crypto is not marginable
  and PDT checks do not count crypto.
- [SPEC] the account entity in docs.alpaca.markets/reference: ``multiplier`` 1/2/4,
  ``buying_power`` = day-trading buying power at 4, max(equity - initial_margin, 0) * 2 at 2, cash
  at 1; ``daytrade_count`` counts the last 5 trading days. A 100,000 paper account reports
  multiplier 4 without being flagged a pattern day trader (Alpaca-API #112; alpaca-backtrader-api
  #46: "the 400k that my paper account shows as my buying power").
- [NOTES] Alpaca API v2 "Notes on Orders and Positions" (alpacahq/user-docs
  content/api-documentation/api-v2/_index.md): easy-to-borrow shorts only, flips refused, no buy
  (sell) while flat with a pending short sale (buy); all 403.
- [ORD] "Orders at Alpaca", Buying Power: a short sale is valued at MAX(limit, 3 % above the ask).
- [PAPER] Alpaca paper trading: a 4th day trade within 5 business days is refused under $25,000
  (docs/alpaca-rules.md); Alpaca's answer is 403 code 40310100 "trade denied due to pattern day trading
  protection" (docs/alpaca-protocol.md error table; forum.alpaca.markets "trade denied due to pattern
  day trading protection").
- [SHORT] "account is not allowed to short" under $2,000 equity (alpaca-trade-api-js #57).
- [CRYPTO] Alpaca crypto orders: market, limit, stop_limit only, 422 "invalid order type for crypto
  order"; 403 "cost basis must be >= minimal amount of order 10" (stocks: "... 1"); 403
  "insufficient balance for USD (requested: X, available: Y)" with ``available``, ``balance`` and
  ``symbol: USD`` (docs/alpaca-rules.md "Crypto"; bodies quoted from live paper runs in public clients).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.exchange.contracts import Instrument
from services.exchange.errors import ApiError
from services.exchange.http.entities import account_json
from services.exchange.http.order_requests import submit_json
from services.exchange.orders import VenueOrder

from .test_venue_fakes import Rig, make_rig

D = Decimal


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[Any]:
    made: list[Rig] = []

    def make(cash: str = "100000", account_type: str = "margin") -> Rig:
        r = make_rig(tmp_path / str(len(made)), cash=cash)
        if account_type != "margin":
            r.venue.ledger.account_type = account_type
        r.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no random partials
        r.venue.universe["HTB"] = Instrument(  # type: ignore[index]
            "HTB",
            "us_equity",
            "NYSE",
            "Hard to borrow",
            D("20"),
            D("0.01"),
            shortable=True,
            easy_to_borrow=False,
        )
        r.market.set("HTB", "19.99", "20.01")
        made.append(r)
        return r

    yield make
    for r in made:
        r.venue.store.close()


def _submit(r: Rig, **body: Any) -> VenueOrder:
    body.setdefault("type", "market")
    body.setdefault("time_in_force", "gtc" if "/" in body["symbol"] else "day")
    order = r.venue.run(lambda: submit_json(r.venue.engine, body))
    r.venue.match_pending()  # what the loop does right after the answer: orders fill after the POST
    return order


def _refused(r: Rig, **body: Any) -> ApiError:
    with pytest.raises(ApiError) as ei:
        _submit(r, **body)
    return ei.value


# ---- buying power by account class ----------------------------------------------------------------
def test_a_100k_margin_account_has_4x_intraday_buying_power(rigs: Any) -> None:
    """[MARGIN] 4x intraday at >= $25,000; [SPEC] multiplier 4, buying_power = daytrading BP,
    regt = 2x; Alpaca-API #112 / alpaca-backtrader-api #46 (100k paper account shows 400k)."""
    r = rigs()
    acct = account_json(r.venue)
    assert acct["multiplier"] == "4"
    assert D(acct["buying_power"]) == D(400000) and D(acct["daytrading_buying_power"]) == D(400000)
    assert D(acct["regt_buying_power"]) == D(200000) and acct["shorting_enabled"] is True
    o = _submit(r, symbol="AAPL", side="buy", qty="3000")  # ~300,030: beyond cash, within 4x
    assert o.status == "filled"
    acct = account_json(r.venue)
    # 4 x equity less the exposure held: 4 x 99,940 (equity after paying the ask) - 3000 x 100 last.
    assert D(acct["buying_power"]) == 4 * D(acct["equity"]) - D(acct["long_market_value"])


def test_a_margin_account_under_25k_has_2x_reg_t_buying_power(rigs: Any) -> None:
    """[MARGIN] 2x at >= $2,000; [SPEC] multiplier 2, buying_power = max(equity - initial_margin, 0) * 2."""
    r = rigs(cash="10000")
    acct = account_json(r.venue)
    assert acct["multiplier"] == "2" and D(acct["buying_power"]) == D(20000)
    assert acct["daytrading_buying_power"] == "0"
    _submit(r, symbol="AAPL", side="buy", qty="150")  # 15,001.50 > cash, within 2x
    acct = account_json(r.venue)
    equity, long_mv = D(acct["equity"]), D(acct["long_market_value"])
    assert D(acct["initial_margin"]) == long_mv / 2
    assert D(acct["buying_power"]) == (equity - long_mv / 2) * 2
    e = _refused(r, symbol="AAPL", side="buy", qty="100")
    assert e.status == 403 and e.message == "insufficient buying power"


def test_a_cash_account_has_1x_and_cannot_short(rigs: Any) -> None:
    """[MARGIN] cash accounts: 1x, no short sales; [SPEC] multiplier 1 -> buying_power = cash;
    [SHORT] "account is not allowed to short"."""
    r = rigs(account_type="cash")
    acct = account_json(r.venue)
    assert acct["multiplier"] == "1" and D(acct["buying_power"]) == D(100000)
    assert acct["shorting_enabled"] is False
    e = _refused(r, symbol="AAPL", side="sell", qty="1")
    assert (e.status, e.message) == (403, "account is not allowed to short")
    # A market buy holds 1.03 x ask: 971 x 103.0103 = 100,023 > 1x cash; 970 fits.
    e = _refused(r, symbol="AAPL", side="buy", qty="971")
    assert e.status == 403 and e.message == "insufficient buying power"
    assert _submit(r, symbol="AAPL", side="buy", qty="970").status == "filled"


def test_a_margin_account_under_2000_cannot_short(rigs: Any) -> None:
    """[MARGIN] "In order to trade on margin or sell short, you must have $2,000 or more account
    equity"; [SHORT] the 403 message."""
    r = rigs(cash="1500")
    assert account_json(r.venue)["multiplier"] == "1"
    e = _refused(r, symbol="AAPL", side="sell", qty="1")
    assert (e.status, e.message) == (403, "account is not allowed to short")


# ---- shorting ---------------------------------------------------------------------------------------
def test_hard_to_borrow_and_non_shortable_assets_cannot_be_sold_short(rigs: Any) -> None:
    """[NOTES] "you are only allowed to short easy-to-borrow assets ... rejected with a 403 if the
    asset being sold is hard to borrow or not shortable at all"."""
    r = rigs()
    for symbol in ("HTB", "GME"):  # shortable but hard to borrow; not shortable
        e = _refused(r, symbol=symbol, side="sell", qty="1")
        assert (e.status, e.message) == (403, f'asset "{symbol}" cannot be sold short')
    _submit(r, symbol="HTB", side="buy", qty="2")  # buying and selling a long stays allowed
    assert _submit(r, symbol="HTB", side="sell", qty="2").status == "filled"


def test_a_short_sale_holds_max_of_limit_and_103_percent_of_the_ask(rigs: Any) -> None:
    """[ORD] "MAX(order's limit price, 3% above the current ask price) * order quantity"; market
    shorts at 1.03 x ask."""
    r = rigs()
    ask = D("100.01")
    low = _submit(
        r, symbol="AAPL", side="sell", type="limit", qty="10", limit_price="110", time_in_force="gtc"
    )
    assert low.reserved == 10 * D("110")
    r.venue.run(lambda: r.venue.engine.cancel(low.id))
    below = _submit(
        r, symbol="AAPL", side="sell", type="limit", qty="10", limit_price="100.50", time_in_force="gtc"
    )
    assert below.reserved == 10 * ask * D("1.03")  # 103.0103 > the 100.50 limit
    r.venue.run(lambda: r.venue.engine.cancel(below.id))


def test_short_sale_buying_power_refusal_uses_the_collared_ask(rigs: Any) -> None:
    """[ORD] a market short is checked at 1.03 x ask x qty against buying power (2x of $10,000)."""
    r = rigs(cash="10000")
    e = _refused(r, symbol="AAPL", side="sell", qty="195")  # 195 x 103.0103 = 20,087 > 20,000
    assert e.status == 403 and e.message == "insufficient buying power"
    assert D(e.extra["cost_basis"]) == 195 * D("100.01") * D("1.03")
    assert _submit(r, symbol="AAPL", side="sell", qty="190").status == "filled"


# ---- opposite pending orders --------------------------------------------------------------------
def test_flat_with_a_pending_short_sale_a_buy_is_refused_and_the_reverse(rigs: Any) -> None:
    """[NOTES] "if you have no position in a stock, but you have a pending short sell (buy) order, you
    will not be permitted to submit a buy (sell) order" (403). Alpaca words it as a wash trade."""
    r = rigs()
    short = _submit(
        r, symbol="AAPL", side="sell", type="limit", qty="5", limit_price="120", time_in_force="gtc"
    )
    e = _refused(r, symbol="AAPL", side="buy", type="limit", qty="5", limit_price="90", time_in_force="gtc")
    assert e.status == 403 and e.message == "potential wash trade detected. use complex orders"
    assert e.extra["existing_order_id"] == short.id
    r.venue.run(lambda: r.venue.engine.cancel(short.id))
    buy = _submit(r, symbol="AAPL", side="buy", type="limit", qty="5", limit_price="90", time_in_force="gtc")
    e = _refused(r, symbol="AAPL", side="sell", qty="5")
    assert e.status == 403 and e.extra["existing_order_id"] == buy.id
    # With a position the rule does not apply: a pending buy does not block selling a long.
    _submit(r, symbol="MSFT", side="buy", qty="5")
    _submit(r, symbol="MSFT", side="buy", type="limit", qty="5", limit_price="250", time_in_force="gtc")
    assert _submit(r, symbol="MSFT", side="sell", qty="5").status == "filled"


# ---- pattern day trader protection ----------------------------------------------------------------
def _round_trip(r: Rig, symbol: str = "AAPL") -> None:
    _submit(r, symbol=symbol, side="buy", qty="1")
    _submit(r, symbol=symbol, side="sell", qty="1")


def test_the_4th_day_trade_in_5_business_days_is_refused_under_25k(rigs: Any) -> None:
    """[PAPER] 4th day trade within 5 business days refused when equity < $25,000, 403 code 40310100;
    [SPEC] ``daytrade_count`` counts the last 5 trading days."""
    r = rigs(cash="10000")
    for _ in range(3):
        _round_trip(r)
    assert account_json(r.venue)["daytrade_count"] == 3
    _submit(r, symbol="AAPL", side="buy", qty="1")  # opening is no day trade
    e = _refused(r, symbol="AAPL", side="sell", qty="1")
    assert (e.status, e.code) == (403, 40310100)
    assert e.message == "trade denied due to pattern day trading protection"
    assert r.venue.ledger.position_qty("AAPL") == 1  # refused, nothing lost
    assert account_json(r.venue)["daytrade_count"] == 3
    # The next business day (Wednesday) the share bought Tuesday sells: not a day trade.
    r.clock.advance(days=1)
    assert _submit(r, symbol="AAPL", side="sell", qty="1").status == "filled"
    assert account_json(r.venue)["daytrade_count"] == 3


def test_day_trades_age_out_after_5_business_days(rigs: Any) -> None:
    """[SPEC] daytrade_count covers the last 5 trading days, today included (weekends skipped)."""
    r = rigs(cash="10000")
    for _ in range(3):
        _round_trip(r)  # Tuesday 2025-03-04
    r.clock.advance(days=6)  # Monday 2025-03-10: Tue..Mon is 5 business days -> still counted
    assert account_json(r.venue)["daytrade_count"] == 3
    r.clock.advance(days=1)  # Tuesday 2025-03-11: Tuesday 03-04 has left the window
    assert account_json(r.venue)["daytrade_count"] == 0
    _round_trip(r)
    assert account_json(r.venue)["daytrade_count"] == 1


def test_pdt_does_not_apply_at_25k_or_to_crypto(rigs: Any) -> None:
    """[PAPER] the protection applies under $25,000 only; [MARGIN] "PDT checks do not count towards
    crypto orders or fills"."""
    r = rigs()
    for _ in range(5):
        _round_trip(r)
    assert account_json(r.venue)["daytrade_count"] == 5
    small = rigs(cash="10000")
    for _ in range(4):
        _submit(small, symbol="BTC/USD", side="buy", qty="0.001")
        _submit(small, symbol="BTC/USD", side="sell", qty="0.001")
    assert account_json(small.venue)["daytrade_count"] == 0


def test_day_trade_counting_rules() -> None:
    """FINRA's day trade, as rules.py documents it: buy, buy, sell, sell is one; buy, sell, buy, sell
    is two; adding to an overnight position and selling is one; a short then a cover is one."""
    from services.exchange.rules import count_day_trades

    now = datetime(2025, 3, 4, 18, 0, tzinfo=UTC)

    def fill(sym: str, side: str, qty: str, minute: int, day: int = 4) -> dict[str, Any]:
        ts = datetime(2025, 3, day, 15, minute, tzinfo=UTC)
        return {
            "transaction_time": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "symbol": sym,
            "side": side,
            "qty": qty,
        }

    def count(acts: list[dict[str, Any]], held: dict[str, Decimal]) -> int:
        return count_day_trades(
            acts, held, now=now, is_business_day=lambda d: d.weekday() < 5, is_crypto=lambda s: "/" in s
        ).count

    assert (
        count(
            [
                fill("A", "buy", "1", 1),
                fill("A", "buy", "1", 2),
                fill("A", "sell", "1", 3),
                fill("A", "sell", "1", 4),
            ],
            {},
        )
        == 1
    )
    assert (
        count(
            [
                fill("A", "buy", "1", 1),
                fill("A", "sell", "1", 2),
                fill("A", "buy", "1", 3),
                fill("A", "sell", "1", 4),
            ],
            {},
        )
        == 2
    )
    # Held 10 overnight, bought 5 today, sold 8 today: one day trade.
    assert count([fill("A", "buy", "5", 1), fill("A", "sell", "8", 2)], {"A": D(7)}) == 1
    # Held overnight and sold today only: none.
    assert count([fill("A", "sell", "8", 2)], {"A": D(2)}) == 0
    assert count([fill("A", "sell", "3", 1), fill("A", "buy", "3", 2)], {}) == 1  # short, then cover
    # Bought Monday, sold Tuesday: none.
    assert count([fill("A", "buy", "1", 1, day=3), fill("A", "sell", "1", 2)], {}) == 0
    assert count([fill("B/USD", "buy", "1", 1), fill("B/USD", "sell", "1", 2)], {}) == 0


def test_the_window_is_five_business_days_including_today() -> None:
    """[SPEC] daytrade_count: "the last 5 trading days (inclusive of today)"."""
    from services.exchange.rules import window_start

    tuesday = datetime(2025, 3, 11, 15, 0, tzinfo=UTC)
    assert window_start(tuesday, lambda d: d.weekday() < 5) == date(2025, 3, 5)
    holiday = date(2025, 3, 7)
    assert window_start(tuesday, lambda d: d.weekday() < 5 and d != holiday) == date(2025, 3, 4)
    saturday = tuesday + timedelta(days=4)  # not a business day itself: Mon 10 .. Fri 14
    assert window_start(saturday, lambda d: d.weekday() < 5) == date(2025, 3, 10)


# ---- crypto and minimums --------------------------------------------------------------------------
def test_crypto_takes_market_limit_and_stop_limit_only(rigs: Any) -> None:
    """[CRYPTO] 422 "invalid order type for crypto order" for stop (and trailing stop)."""
    r = rigs()
    e = _refused(r, symbol="BTC/USD", side="buy", type="stop", qty="0.01", stop_price="60000")
    assert (e.status, e.message) == (422, "invalid order type for crypto order")
    e = _refused(r, symbol="BTC/USD", side="buy", type="trailing_stop", qty="0.01", trail_percent="1")
    assert (e.status, e.message) == (422, "invalid order type for crypto order")
    o = _submit(
        r,
        symbol="BTC/USD",
        side="buy",
        type="stop_limit",
        qty="0.01",
        stop_price="60000",
        limit_price="60100",
    )
    assert o.status == "new"


def test_crypto_cost_basis_is_at_least_10_dollars(rigs: Any) -> None:
    """[CRYPTO] 403 "cost basis must be >= minimal amount of order 10"."""
    r = rigs()
    e = _refused(r, symbol="BTC/USD", side="buy", qty="0.0001")  # 5.00 at a 50,010 ask
    assert (e.status, e.message) == (403, "cost basis must be >= minimal amount of order 10")
    e = _refused(r, symbol="BTC/USD", side="buy", notional="9.99")
    assert e.message == "cost basis must be >= minimal amount of order 10"
    assert _submit(r, symbol="BTC/USD", side="buy", notional="10").status == "filled"


def test_a_crypto_buy_beyond_cash_is_insufficient_balance_for_usd(rigs: Any) -> None:
    """[CRYPTO] 403 "insufficient balance for USD (requested: X, available: Y)": crypto is bought with
    cash, never margin ([MARGIN] "Margin Trading for Crypto is not applicable")."""
    r = rigs()
    e = _refused(r, symbol="BTC/USD", side="buy", qty="3")  # 150,030 > 100,000 cash (< 400,000 BP)
    assert e.status == 403
    assert e.message == "insufficient balance for USD (requested: 150030, available: 100000)"
    assert e.extra == {"available": "100000", "balance": "100000", "symbol": "USD"}
    # An open crypto buy claims its cash.
    _submit(r, symbol="BTC/USD", side="buy", type="limit", qty="1.5", limit_price="40000")
    e = _refused(r, symbol="BTC/USD", side="buy", type="limit", qty="1", limit_price="45000")
    assert e.message == "insufficient balance for USD (requested: 45000, available: 40000)"


def test_a_stock_notional_order_is_at_least_1_dollar(rigs: Any) -> None:
    """docs/alpaca-rules.md "Order types and time in force": 403 "cost basis must be >= minimal amount of
    order 1"."""
    r = rigs()
    e = _refused(r, symbol="AAPL", side="buy", notional="0.5")
    assert (e.status, e.message) == (403, "cost basis must be >= minimal amount of order 1")
    assert _submit(r, symbol="AAPL", side="buy", notional="1").status == "filled"
