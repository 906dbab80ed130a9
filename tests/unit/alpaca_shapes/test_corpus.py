"""The fixture corpus itself: every body says where Alpaca published it, and the loader is exact."""

from __future__ import annotations

import re
from typing import Any

import msgpack
import pytest

from tests.support import alpaca_fixtures as fx

COMMIT = re.compile(r"^[0-9a-f]{40}$")
ALL = [(area, name) for area in fx.AREAS for name in fx.names(area)]


def _sources(src: dict[str, Any]) -> list[dict[str, Any]]:
    return list(src.get("assembled_from", [])) + ([] if "assembled_from" in src else [src])


@pytest.mark.parametrize(("area", "name"), ALL, ids=[f"{a}/{n}" for a, n in ALL])
def test_every_fixture_names_a_public_alpaca_source(area: str, name: str) -> None:
    src = fx.source(area, name)
    for s in _sources(src):
        if "repository" in s:
            assert s["repository"].startswith("alpacahq/")
            assert COMMIT.match(s["commit"]) and s["path"]
        elif "spec" in s:
            assert s["spec"] in ("specs/alpaca-trading-openapi.yaml", "specs/alpaca-market-data-openapi.yaml")
            assert s["example"]
        else:
            assert s["issue"].startswith("alpacahq/") and s["url"].startswith("https://github.com/alpacahq/")
    if "assembled_from" in src:  # put together from documented shapes: it says so and why
        assert src["note"] and src.get("rule", src["note"])


def test_the_corpus_covers_what_the_replays_need() -> None:
    want = {
        "orders": {
            "simple_market_accepted",
            "notional_market_qty_null",
            "bracket_with_legs",
            "trailing_stop_with_hwm",
            "replaced_with_replaces_and_replaced_by",
        },
        "positions": {"stock_long", "stock_short", "crypto_btcusd"},
        "stream": {
            "trade",
            "quote",
            "bar",
            "go_updated_bar",
            "go_correction",
            "go_cancel",
            "error_405_symbol_limit",
            "error_406_connection_limit",
            "subscription",
        },
        "trade_updates": {"fill_docs_example"},
        "errors": {"insufficient_buying_power_403", "order_not_found_404"},
    }
    for area, names in want.items():
        assert names <= set(fx.names(area)), area


def test_bodies_are_fresh_copies() -> None:
    a = fx.body("orders", "simple_market_accepted")
    a["qty"] = "NaN"
    assert fx.body("orders", "simple_market_accepted")["qty"] != "NaN"


def test_crypto_sources_say_what_alpaca_says() -> None:
    """Positions list BTCUSD; assets, fills and the close-all order say BTC/USD (docs
    crypto-trading-broker.md; alpaca-py test_close_all_positions)."""
    assert fx.body("positions", "crypto_btcusd")[0]["symbol"] == "BTCUSD"
    assert fx.body("assets", "crypto_btc_usd")["symbol"] == "BTC/USD"
    assert fx.body("activities", "fill_crypto")[0]["symbol"] == "BTC/USD"
    close = fx.body("close_all", "close_all_207")[0]
    assert (close["symbol"], close["body"]["symbol"]) == ("BTCUSD", "BTC/USD")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-02-22T15:51:44.208Z", 1614009104_208000000),
        ("2021-02-22T19:15:00Z", 1614021300_000000000),
        ("2022-04-19T13:45:04.981350886-04:00", 1650390304_981350886),
    ],
)
def test_rfc3339_nanoseconds(text: str, expected: int) -> None:
    assert fx.rfc3339_ns(text) == expected


def test_rfc3339_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="RFC-3339"):
        fx.rfc3339_ns("yesterday")


def test_stream_frames_pack_t_as_a_msgpack_timestamp() -> None:
    [m] = msgpack.unpackb(fx.stream_frame("trade"))
    assert isinstance(m["t"], msgpack.Timestamp) and m["t"].to_unix_nano() == 1614009104_208000000
    assert {k: v for k, v in m.items() if k != "t"} == {
        k: v for k, v in fx.body("stream", "trade")[0].items() if k != "t"
    }
