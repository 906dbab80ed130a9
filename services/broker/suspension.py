"""``Suspension`` and ``StreamSuspension``: while one holds, a client of the exchange's address sends
nothing there.

When the local exchange dies its port is free, and whatever binds it next would receive the keys
that the REST clients send in every request's headers and the streams in their auth message. The
terminal suspends every client of that address the moment the death is noticed and resumes them
once its own restarted exchange listens there again. Thread-safe: suspended from the thread that
notices the death, checked on the worker threads that send requests.

:class:`StreamSuspension` is the same for a websocket client: while suspended it connects no more,
sends nothing (not even its keys) and drops a socket still open; :meth:`StreamSuspension.resume`
lets it connect again at once. Shared by the market-data connections and the trading stream, which
differ only in where their open socket is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from services.broker.base import BrokerNotSent


class Suspension:
    """A reason to send nothing, or None. Reads and writes are single attribute accesses."""

    def __init__(self) -> None:
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        return self._reason

    def suspend(self, reason: str) -> None:
        self._reason = reason

    def resume(self) -> None:
        self._reason = None

    def check(self, what: str) -> None:
        """Raise :class:`BrokerNotSent` (nothing sent) while suspended."""
        reason = self._reason
        if reason is not None:
            raise BrokerNotSent(f"{what}: not sent: {reason}")


class StreamSuspension:
    """Mixin: call :meth:`_init_suspension` in ``__init__``, set ``_loop`` when the client starts on
    its loop, and implement :meth:`_open_socket`."""

    _suspended: str | None
    _resumed: asyncio.Event
    _loop: asyncio.AbstractEventLoop | None

    def _init_suspension(self) -> None:
        self._suspended = None  # why nothing may be sent to the address, or None
        self._resumed = asyncio.Event()
        self._loop = None

    @property
    def suspended(self) -> str | None:
        return self._suspended

    def suspend(self, reason: str) -> None:
        """Any thread: connect no more and send nothing (not even the keys) until :meth:`resume`;
        a socket still open is dropped."""
        self._suspended = reason
        self._on_loop(self._drop_suspended)

    def resume(self) -> None:
        """Any thread: connect again at once."""
        self._suspended = None
        self._on_loop(self._resumed.set)

    def _open_socket(self) -> Any:
        """The client's open websocket (with a ``transport``), or None."""
        raise NotImplementedError

    def _on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def _drop_suspended(self) -> None:
        ws = self._open_socket()
        if self._suspended is not None and ws is not None:
            ws.transport.abort()
