from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest

from app.errors import ExceptionHooks, LoopNotifier
from services.domain.bus import EventBus
from services.domain.events import NotificationEvent


@pytest.fixture
def wired() -> tuple[ExceptionHooks, list[NotificationEvent], LoopNotifier]:
    bus = EventBus()
    got: list[NotificationEvent] = []
    bus.subscribe(NotificationEvent, got.append)
    notifier = LoopNotifier(bus, redact=lambda s: s.replace("hunter2hunter2", "***"))
    return ExceptionHooks(notify=notifier), got, notifier


@pytest.mark.expected_log(r"^heron\.errors: unhandled exception; Heron keeps running")
def test_sys_hook_logs_and_notifies_instead_of_dying(wired, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    hooks, got, _ = wired
    hooks.install()
    try:
        assert sys.excepthook == hooks.sys_hook
        try:
            raise ValueError("slot failed with hunter2hunter2")
        except ValueError:
            with caplog.at_level(logging.ERROR, logger="heron.errors"):
                sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    finally:
        hooks.uninstall()
    assert sys.excepthook is sys.__excepthook__ or sys.excepthook != hooks.sys_hook
    assert (
        got[-1].level == "error" and got[-1].message == "Unexpected error: ValueError: slot failed with ***"
    )
    assert "unhandled exception" in caplog.text


@pytest.mark.expected_log(r"^heron\.errors: unhandled exception in thread worker\-x")
def test_thread_hook_hops_onto_the_loop_thread(wired) -> None:  # type: ignore[no-untyped-def]
    hooks, got, notifier = wired
    delivered_on: list[int] = []
    notifier.bus.subscribe(NotificationEvent, lambda _e: delivered_on.append(threading.get_ident()))

    async def main() -> None:
        notifier.attach_loop(asyncio.get_running_loop())
        hooks.install()
        try:
            worker = threading.Thread(target=lambda: 1 / 0, name="worker-x")
            worker.start()
            await asyncio.to_thread(worker.join)
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0)
        finally:
            hooks.uninstall()

    asyncio.run(main())
    assert got and got[0].source == "thread:worker-x" and "ZeroDivisionError" in got[0].message
    assert delivered_on == [threading.get_ident()]


@pytest.mark.expected_log(r"^heron\.errors: Task exception was never retrieved \(None\)")
def test_loop_handler_reports_unretrieved_task_errors(wired) -> None:  # type: ignore[no-untyped-def]
    hooks, got, notifier = wired

    async def fails() -> None:
        raise RuntimeError("background task broke")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        notifier.attach_loop(loop)
        hooks.install_loop_handler(loop)
        loop.call_exception_handler(
            {
                "message": "Task exception was never retrieved",
                "exception": RuntimeError("background task broke"),
            }
        )

    asyncio.run(main())
    assert got[-1].source == "asyncio" and "background task broke" in got[-1].message


def test_keyboard_interrupt_goes_to_the_previous_hook(wired, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    hooks, got, _ = wired
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, v, tb: seen.append(t))
    hooks.install()
    try:
        sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    finally:
        hooks.uninstall()
    assert seen == [KeyboardInterrupt] and got == []
