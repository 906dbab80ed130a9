"""The order gate: closed while the trading stream is down or resyncing after a reconnect.

Alpaca does not replay trade updates missed during a disconnect, so after every reconnect the
terminal must re-read orders and positions before it lets new orders out.
"""

from __future__ import annotations

import asyncio


class OrderGate:
    """``allowed`` / ``reason`` for order entry; :meth:`wait_allowed` awaits opening. Loop thread only."""

    def __init__(self, *, allowed: bool = False, reason: str = "trading stream not connected yet") -> None:
        self._event = asyncio.Event()
        self._reason = "" if allowed else reason
        if allowed:
            self._event.set()

    @property
    def allowed(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        """Why orders are held back ("" when allowed)."""
        return self._reason

    def close(self, reason: str) -> None:
        self._reason = reason
        self._event.clear()

    def open(self) -> None:
        self._reason = ""
        self._event.set()

    async def wait_allowed(self, timeout: float | None = None) -> bool:
        """Wait until the gate opens; returns False on timeout."""
        if self._event.is_set():
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True
