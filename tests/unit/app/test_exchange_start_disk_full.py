"""Start-up on a full disk: the local exchange's session file cannot be written, so the exchange
cannot start; start-up says so once and starts it as soon as space returns (the chaos runs' terminal
restarted during disk_full stayed DISABLED for its whole session)."""

from __future__ import annotations

import asyncio
import errno
from types import SimpleNamespace
from typing import Any

import pytest

import app.subsystems.exchange as exchange_subsystem
from app.exchange_process import ExchangeError, ExchangeSession
from app.secrets import ApiKeys


class _Launcher:
    def __init__(self, failures: int, err: int = errno.ENOSPC) -> None:
        self.failures, self.err, self.calls = failures, err, 0

    async def start(self) -> ExchangeSession:
        self.calls += 1
        if self.calls <= self.failures:
            cause = OSError(self.err, "No space left on device")
            raise ExchangeError("its session file could not be written: disk full writing x") from cause
        keys = ApiKeys(key_id="HRNABCDEF0123456789", secret="s" * 40)
        return ExchangeSession(url="http://127.0.0.1:1", keys=keys, pid=1, owned=True)


def _ctx(notes: list[tuple[str, ...]]) -> Any:
    lifecycle = SimpleNamespace(requested=False)
    return SimpleNamespace(lifecycle=lifecycle, notify=lambda *a: notes.append(a))


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = asyncio.sleep

    async def instant(_seconds: float) -> None:
        await real_sleep(0)

    monkeypatch.setattr(exchange_subsystem.asyncio, "sleep", instant)


@pytest.mark.expected_log(r"^heron\.app: the local exchange cannot start yet: its")
@pytest.mark.usefixtures("no_wait")
def test_a_full_disk_at_start_is_said_once_and_the_exchange_starts_when_space_returns() -> None:
    notes: list[tuple[str, ...]] = []
    launcher = _Launcher(failures=3)
    session = asyncio.run(exchange_subsystem.start_local_exchange(_ctx(notes), launcher))  # type: ignore[arg-type]
    assert session.url == "http://127.0.0.1:1" and launcher.calls == 4
    assert len(notes) == 1 and "disk full" in notes[0][2] and "trying again" in notes[0][2]


@pytest.mark.usefixtures("no_wait")
def test_other_start_failures_are_not_retried() -> None:
    launcher = _Launcher(failures=1, err=errno.EACCES)
    with pytest.raises(ExchangeError):
        asyncio.run(exchange_subsystem.start_local_exchange(_ctx([]), launcher))  # type: ignore[arg-type]
    assert launcher.calls == 1


def test_only_quick_deaths_in_a_row_make_a_restart_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exchange killed now and then restarts at once every time; one that dies again and again
    soon after each restart waits 1, 2, 4 … s (a crash loop). The pause counted every death of the
    session, so a child killed twice in a session waited 4 s and more."""
    from app import exchange_supervisor

    clock = [1000.0]
    monkeypatch.setattr(exchange_supervisor.time, "monotonic", lambda: clock[0])
    sup = exchange_supervisor.ExchangeSupervisor(None, None, None)  # type: ignore[arg-type]
    assert sup._pause() == 0.0
    sup._last_restart = clock[0]
    clock[0] += 1
    assert [sup._pause(), sup._pause(), sup._pause()] == [1.0, 2.0, 4.0]
    clock[0] += exchange_supervisor.QUICK_DEATH_S
    assert sup._pause() == 0.0
    sup._last_restart = clock[0]
    clock[0] += 1
    assert sup._pause() == 1.0


@pytest.mark.expected_log(r"^heron\.app: the local exchange \(pid \S+ was killed")
def test_an_exchange_dead_during_the_account_check_is_started_again_and_connected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child died after it reported its address but before the supervisor watched it: the
    account check failed and the terminal sat idle, DISABLED, with the death said only at quit."""
    notes: list[tuple[str, ...]] = []
    ctx = _ctx(notes)

    class Proc:
        pid = 4242

        def poll(self) -> int | None:
            return -9

    class Launcher:
        process: Any = Proc()
        restarts = 0

        async def restart(self) -> ExchangeSession:
            Launcher.restarts += 1
            self.process = None  # the new child is not a Proc that died
            return await _Launcher(failures=0).start()

    calls: list[tuple[Any, ...]] = []

    async def connect(_ctx: Any, services: Any, *creds: Any) -> bool:
        calls.append(creds)
        return True

    monkeypatch.setattr(exchange_subsystem, "connect_broker", connect)
    services = SimpleNamespace(launcher=Launcher(), exchange=None, failures={"broker": "did not answer"})
    creds = ("HRNABCDEF0123456789", "s" * 40, "local", "http://127.0.0.1:1")
    assert asyncio.run(exchange_subsystem.restart_dead_exchange(ctx, services, creds))  # type: ignore[arg-type]
    assert Launcher.restarts == 1 and calls == [creds] and "broker" not in services.failures
    assert services.exchange is not None
    assert len(notes) == 1 and "was killed by SIGKILL during start-up" in notes[0][2]


def test_a_failed_account_check_with_a_live_exchange_is_not_retried() -> None:
    class Proc:
        pid = 1

        def poll(self) -> int | None:
            return None  # still running: the failure is something else, said as it was

    services = SimpleNamespace(launcher=SimpleNamespace(process=Proc()), exchange=None, failures={})
    creds = ("k", "s", "local", None)
    assert not asyncio.run(exchange_subsystem.restart_dead_exchange(_ctx([]), services, creds))  # type: ignore[arg-type]
