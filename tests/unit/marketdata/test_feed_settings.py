"""The live feed and the history feed are settings (schema v3), migrated from v2 files.

Sources: Alpaca real-time stock data docs (the stock stream is ``/v2/iex`` or ``/v2/sip``),
Alpaca market-data OpenAPI ``feed`` parameter (docs.alpaca.markets/reference),
Alpaca Market Data FAQ (free plans: no SIP data from the last 15 minutes). Defaults follow the free
plan: IEX live, SIP history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import settings as S


def test_a_v2_file_is_migrated_to_iex_live_and_sip_history(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 2, "watchlist": ["AAPL"]}))
    loaded = S.load(path)
    assert (loaded.market_data.live_feed, loaded.market_data.history_feed) == ("iex", "sip")
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == S.SCHEMA_VERSION
    assert saved["market_data"] == {"live_feed": "iex", "history_feed": "sip"}
    assert (tmp_path / "settings.json.bak-v2").exists()


def test_feeds_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    chosen = S.Settings(market_data=S.MarketDataSettings(live_feed="sip", history_feed="sip"))
    S.save(chosen, path)
    assert S.load(path).market_data == S.MarketDataSettings("sip", "sip")


@pytest.mark.parametrize(
    "section",
    [
        {"live_feed": "delayed_sip"},  # a REST feed, not a stream Heron can read
        {"history_feed": "IEX"},
        {"live_feed": None},
        {"feed": "sip"},  # a typo would silently keep the default
    ],
)
def test_a_bad_feed_is_refused_with_its_name(section: dict[str, object]) -> None:
    with pytest.raises(S.SettingsError, match="market_data"):
        S.from_dict({"schema_version": 3, "market_data": section})
