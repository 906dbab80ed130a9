"""Exception hooks: an unexpected error is logged (redacted) and shown, and Heron keeps running.

Covers ``sys.excepthook`` (including exceptions raised in Qt slots, which PySide6 routes there),
``threading.excepthook`` and the asyncio loop's exception handler. Each logs with the traceback
and hands a :class:`NotificationEvent` to ``notify``. ``notify`` may be called from any thread;
:class:`LoopNotifier` delivers it on the event-loop thread, as the bus requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from services.domain.bus import EventBus
from services.domain.events import NotificationEvent
from services.domain.input_errors import input_error

log = logging.getLogger("heron.errors")

Notify = Callable[[NotificationEvent], None]


def _summary(exc: BaseException | None, fallback: str) -> str:
    if exc is None:
        return fallback
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LoopNotifier:
    """Publishes notifications on the bus from any thread (hopping onto the loop when needed)."""

    def __init__(self, bus: EventBus, redact: Callable[[str], str] = lambda s: s) -> None:
        self.bus = bus
        self.redact = redact
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Call on the loop's thread once it runs."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def __call__(self, event: NotificationEvent) -> None:
        event = NotificationEvent(
            ts=event.ts, level=event.level, source=event.source, message=self.redact(event.message)
        )
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self.bus.publish(event)
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
                loop.call_soon_threadsafe(self.bus.publish, event)


@dataclass
class ExceptionHooks:
    """Installs the three hooks; :meth:`uninstall` restores what was there before."""

    notify: Notify | None = None
    _prev_sys: Callable[..., Any] | None = None
    _prev_thread: Callable[..., Any] | None = None
    installed: bool = False

    def install(self) -> None:
        if self.installed:
            return
        self._prev_sys = sys.excepthook
        self._prev_thread = threading.excepthook
        sys.excepthook = self.sys_hook
        threading.excepthook = self.thread_hook
        self.installed = True

    def uninstall(self) -> None:
        if not self.installed:
            return
        if sys.excepthook == self.sys_hook and self._prev_sys is not None:
            sys.excepthook = self._prev_sys
        if threading.excepthook == self.thread_hook and self._prev_thread is not None:
            threading.excepthook = self._prev_thread
        self.installed = False

    def install_loop_handler(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self.loop_handler)

    def _report(self, source: str, message: str) -> None:
        if self.notify is None:
            return
        try:
            event = NotificationEvent(ts=datetime.now(UTC), level="error", source=source, message=message)
            self.notify(event)
        except Exception:
            log.exception("could not deliver the error notification")

    def sys_hook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        """Any thread that raised to the top (in Heron: mostly Qt slots on the GUI thread)."""
        if issubclass(exc_type, KeyboardInterrupt) and self._prev_sys is not None:
            self._prev_sys(exc_type, exc, tb)
            return
        typo = input_error(exc)
        if typo is not None:  # a mistyped value that reached a slot: one line; the trace for debugging
            log.error("refused: %s", typo)
            log.debug("where the mistyped value was refused", exc_info=(exc_type, exc, tb))
            self._report("excepthook", typo)
            return
        log.error("unhandled exception; Heron keeps running", exc_info=(exc_type, exc, tb))
        self._report("excepthook", f"Unexpected error: {_summary(exc, exc_type.__name__)}")

    def thread_hook(self, args: threading.ExceptHookArgs) -> None:
        """Runs on the dying worker thread."""
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        log.error("unhandled exception in thread %s", name, exc_info=exc_info)  # type: ignore[arg-type]
        summary = _summary(args.exc_value, args.exc_type.__name__)
        self._report(f"thread:{name}", f"Error in thread {name}: {summary}")

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Runs on the event-loop thread for errors nobody awaited (tasks, callbacks)."""
        exc = context.get("exception")
        message = str(context.get("message") or "unhandled error in the event loop")
        where = context.get("task") or context.get("future") or context.get("handle")
        if exc is not None:
            log.error("%s (%r)", message, where, exc_info=(type(exc), exc, exc.__traceback__))
        else:
            log.error("%s (%r)", message, where)
        self._report("asyncio", f"{message}: {_summary(exc, 'no exception')}")
