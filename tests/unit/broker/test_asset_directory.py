"""AssetDirectory: the broker's asset list fetched once and shared, unknown symbols answered None,
a failed load said (and tried again on the next lookup)."""

from __future__ import annotations

import asyncio

import pytest

from services.broker.assets import AssetDirectory, AssetListUnavailable
from services.domain.models import Asset

AAPL = Asset("AAPL", "us_equity", "NASDAQ", True, True, True)
BTC = Asset("BTC/USD", "crypto", "CRYPTO", True, False, True)


def test_one_fetch_shared_by_concurrent_lookups() -> None:
    calls: list[int] = []

    async def fetch() -> list[Asset]:
        calls.append(1)
        await asyncio.sleep(0)
        return [AAPL, BTC]

    async def main() -> None:
        d = AssetDirectory(fetch)
        assert not d.loaded and d.get("AAPL") is None
        found = await asyncio.gather(d.resolve("AAPL"), d.resolve("BTC/USD"), d.resolve("ZZZQ"))
        assert found == [AAPL, BTC, None]
        assert d.loaded and len(d) == 2 and d.get("BTC/USD") is BTC
        assert await d.resolve("AAPL") is AAPL

    asyncio.run(main())
    assert calls == [1]


def test_a_failed_load_is_said_and_retried() -> None:
    answers: list[object] = [ConnectionError("refused"), [AAPL]]

    async def fetch() -> list[Asset]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    async def main() -> None:
        d = AssetDirectory(fetch)
        with pytest.raises(AssetListUnavailable, match="could not be loaded: refused"):
            await d.resolve("AAPL")
        assert d.error == "refused" and not d.loaded
        assert await d.resolve("AAPL") is AAPL and d.error == ""

    asyncio.run(main())
