"""The one bridge between the panels and background work: run it off the GUI thread, deliver the
outcome back on it.

:func:`run_async` schedules a service coroutine on the running loop (the GUI thread under qasync)
and calls ``done(result, error)`` on the same thread; the trading panels use it for orders and
account calls. :class:`TaskBridge` adds what the operations panels need for long work (backtests,
training, credential checks, reconciliation runs), with its coroutine path built on
:func:`run_async`:

- :meth:`TaskBridge.run_blocking` runs a blocking function on a worker thread; ``on_done`` /
  ``on_error`` are called on the GUI thread (through a queued Qt signal).
- :meth:`TaskBridge.run_coroutine` runs a service coroutine. Under qasync the GUI thread *is* the
  service loop's thread, so the coroutine becomes a task on that running loop (the services' own
  thread rules hold). Without a running loop (a standalone preview, a widget test) it runs with
  ``asyncio.run`` on a worker thread instead, so the GUI thread still never blocks.
- :meth:`TaskBridge.post` hands any callable to the GUI thread from any thread.

Signals:
    finished(): after every ``on_done``/``on_error`` callback (tests wait on it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from services.broker.base import BrokerClosed
from services.domain.input_errors import input_error

T = TypeVar("T")
log = logging.getLogger("heron.widgets.tasks")
_panel_log = logging.getLogger("heron.widgets")


def run_async(
    coro: Awaitable[T],
    done: Callable[[T | None, BaseException | None], None],
    *,
    log_errors: bool = True,
) -> asyncio.Future[T]:
    """Schedule ``coro`` on the running loop (the GUI thread under qasync); ``done(result, error)``
    is called on the same thread when it finishes. Never blocks the GUI thread. A failure is logged
    unless ``log_errors`` is false (the caller reports it itself)."""
    try:
        fut: asyncio.Future[T] = asyncio.ensure_future(coro)
    except RuntimeError:  # no loop, or a closed one (Heron is shutting down): nothing can run now
        if inspect.iscoroutine(coro):
            coro.close()  # said, not left for the garbage collector to warn about
        _panel_log.debug("background action dropped: no event loop runs any more")
        spare = asyncio.new_event_loop()  # only to hand back a future that says "cancelled"
        dropped: asyncio.Future[T] = spare.create_future()
        dropped.cancel()
        spare.close()
        done(None, asyncio.CancelledError())
        return dropped

    def finished(f: asyncio.Future[Any]) -> None:
        if f.cancelled():
            done(None, asyncio.CancelledError())
            return
        error = f.exception()
        if error is not None:
            typo = input_error(error)
            if isinstance(error, BrokerClosed):  # Heron is shutting down: nothing was sent, no fault
                _panel_log.debug("background action dropped: %s", error)
            elif log_errors and typo is not None:  # a mistyped value: one line, no traceback
                _panel_log.error("refused: %s", typo)
            elif log_errors:
                _panel_log.error("background action failed: %s", error, exc_info=error)
            done(None, error)
        else:
            done(f.result(), None)

    fut.add_done_callback(finished)
    return fut


class TaskBridge(QObject):
    _deliver = Signal(object)
    finished = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._deliver.connect(self._run_on_gui)
        self._threads: list[threading.Thread] = []
        self.running = 0

    def post(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` on the GUI thread soon. Any thread.

        When the panel (and this bridge) was closed before the work finished, the outcome has no
        one to show it to and is dropped.
        """
        try:
            self._deliver.emit(fn)
        except RuntimeError:  # "Signal source has been deleted"
            log.debug("a panel task finished after its panel was closed; result dropped")

    def _run_on_gui(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("a panel callback failed")

    def _settle(self, callback: Callable[[], None]) -> None:
        self.running -= 1
        try:
            callback()
        finally:
            self.finished.emit()

    def run_blocking(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None],
        *,
        name: str = "heron-panel-task",
    ) -> threading.Thread:
        """Run ``fn()`` on a daemon worker thread. GUI thread."""
        self.running += 1

        def work() -> None:
            try:
                result = fn()
            except BaseException as exc:
                error = exc
                self.post(lambda: self._settle(lambda: on_error(error)))
                return
            self.post(lambda: self._settle(lambda: on_done(result)))

        thread = threading.Thread(target=work, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()
        return thread

    def run_coroutine(
        self,
        factory: Callable[[], Awaitable[T]],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run ``factory()`` on the running service loop (or, without one, on a worker thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:

            def blocking() -> T:
                async def main() -> T:
                    return await factory()

                return asyncio.run(main())

            self.run_blocking(blocking, on_done, on_error)
            return
        self.running += 1

        def done(result: T | None, error: BaseException | None) -> None:
            if error is not None:
                self._settle(lambda: on_error(error))
            else:
                self._settle(lambda: on_done(result))  # type: ignore[arg-type]

        run_async(factory(), done, log_errors=False)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for worker threads (tests and shutdown only)."""
        for t in list(self._threads):
            t.join(timeout)
