"""The broker's asset list, loaded once and looked up by symbol: what a symbol box checks a typed
symbol against before it watches or charts it (``GET /v2/assets``; crypto pairs are listed as
``BTC/USD``, as orders and market data spell them, docs/alpaca-rules.md "Symbols").

Loading is shared: callers that ask while the list is on its way wait for the same request. A
failed load is remembered as the error (the next :meth:`AssetDirectory.resolve` tries again), so a
caller can say why it cannot check a symbol instead of guessing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.domain.models import Asset


def not_listed(symbol: str) -> str:
    """What a symbol box says of a symbol the broker does not list."""
    return f"{symbol} is not an asset the broker lists: check the spelling (crypto pairs as BTC/USD)"


class AssetListUnavailable(Exception):
    """The asset list could not be loaded; the message says why."""


class AssetDirectory:
    """Symbol → :class:`Asset`, from ``fetch`` (the broker's ``get_assets``)."""

    def __init__(self, fetch: Callable[[], Awaitable[list[Asset]]]) -> None:
        self._fetch = fetch
        self._assets: dict[str, Asset] | None = None
        self._loading: asyncio.Future[dict[str, Asset]] | None = None
        self.error: str = ""

    @property
    def loaded(self) -> bool:
        return self._assets is not None

    def get(self, symbol: str) -> Asset | None:
        """The asset when the list is loaded and has the symbol; None otherwise (see :attr:`loaded`)."""
        return None if self._assets is None else self._assets.get(symbol)

    def __len__(self) -> int:
        return 0 if self._assets is None else len(self._assets)

    async def load(self) -> dict[str, Asset]:
        """The list, fetched once (concurrent callers share the request)."""
        if self._assets is not None:
            return self._assets
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load())
        return await asyncio.shield(self._loading)

    async def _load(self) -> dict[str, Asset]:
        try:
            assets = await self._fetch()
        except Exception as exc:  # any broker failure: said, and tried again on the next lookup
            self.error = str(exc) or type(exc).__name__
            raise AssetListUnavailable(f"the asset list could not be loaded: {self.error}") from exc
        self._assets = {a.symbol: a for a in assets}
        self.error = ""
        return self._assets

    async def resolve(self, symbol: str) -> Asset | None:
        """The asset for ``symbol`` (normalised spelling), None when the broker lists no such asset.
        Raises :class:`AssetListUnavailable` when the list cannot be had."""
        return (await self.load()).get(symbol)
