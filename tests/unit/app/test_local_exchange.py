from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app import exchange_process, local_exchange
from app.exchange_process import ExchangeError, connect_external, exchange_program_available, read_keys_file
from app.local_exchange import LocalExchangeLauncher, start_early
from app.settings import LocalExchangeSettings
from tests.support.polling import file_text, wait_for

FAKE = "tests.unit.app.fake_exchange"


def launcher(tmp_path: Path, **kw) -> LocalExchangeLauncher:  # type: ignore[no-untyped-def]
    return LocalExchangeLauncher(tmp_path / "exchange", LocalExchangeSettings(seed=7), module=FAKE, **kw)


def test_start_writes_a_private_session_reuses_it_and_stops_only_its_own(tmp_path: Path) -> None:
    secrets_seen: list[str] = []

    async def main() -> None:
        first = launcher(tmp_path, on_secret=secrets_seen.append)
        session = await first.start()
        try:
            assert session.owned and session.url.startswith("http://127.0.0.1:")
            data = json.loads(first.session_file.read_text())
            assert data == {
                "url": session.url,
                "pid": session.pid,
                "key_id": session.keys.key_id,
                "secret": session.keys.secret,
            }
            assert stat.S_IMODE(os.stat(first.session_file).st_mode) == 0o600
            argv = json.loads((tmp_path / "exchange" / "argv.json").read_text())
            assert session.keys.secret not in " ".join(argv) and "--keys-file" in argv
            assert argv[argv.index("--seed") : argv.index("--seed") + 2] == ["--seed", "7"]
            assert "--always-open" in argv
            assert secrets_seen == [session.keys.secret]

            second = launcher(tmp_path)  # a terminal restarted while the exchange still runs
            reused = await second.start()
            assert reused.url == session.url and not reused.owned and second.process is None
            await second.stop()  # not ours: keeps running
            assert first.process is not None and first.process.poll() is None
        finally:
            await first.stop()
        assert first.process is None and not first.session_file.exists()

    asyncio.run(main())


def test_stale_session_file_is_not_reused(tmp_path: Path) -> None:
    async def main() -> None:
        lx = launcher(tmp_path)
        lx.exchange_dir.mkdir(parents=True)
        lx.session_file.write_text(
            json.dumps({"url": "http://127.0.0.1:9", "pid": 999999, "key_id": "K", "secret": "old-secret"})
        )
        session = await lx.start()
        try:
            assert session.owned and session.keys.secret != "old-secret"
        finally:
            await lx.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("behaviour", "fragment"), [("exit", "exited with status 3"), ("silent", "within 0.5 s")]
)
def test_startup_failures_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str, fragment: str
) -> None:
    monkeypatch.setenv("FAKE_EXCHANGE_BEHAVIOUR", behaviour)
    lx = launcher(tmp_path, startup_timeout=0.5)
    spawned: list[subprocess.Popen[str]] = []
    real_register = local_exchange._register_child
    monkeypatch.setattr(local_exchange, "_register_child", lambda p: (spawned.append(p), real_register(p)))
    with pytest.raises(ExchangeError, match=fragment):
        asyncio.run(lx.start())
    assert len(spawned) == 1 and spawned[0].poll() is not None  # nothing left running
    assert lx.process is None  # forgotten: the next start() starts a new child


@pytest.mark.expected_log(r"^heron\.app: the local exchange was killed by SIGKILL")
def test_a_child_killed_before_it_reports_its_address_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child killed at start-up (before its "listening on" line) left the terminal without an
    exchange for the whole session: start-up said "exited with status -9" and gave up."""
    import app.subsystems.exchange as exchange_subsystem

    monkeypatch.setenv("FAKE_EXCHANGE_BEHAVIOUR", "killed-once")
    monkeypatch.setattr(exchange_subsystem, "EXCHANGE_RETRY_PAUSE_S", 0.01, raising=False)
    notes: list[tuple[str, ...]] = []
    ctx: Any = SimpleNamespace(lifecycle=SimpleNamespace(requested=False), notify=lambda *a: notes.append(a))

    async def main() -> None:
        lx = launcher(tmp_path)
        try:
            session = await exchange_subsystem.start_local_exchange(ctx, lx)
            assert lx.process is not None and lx.process.poll() is None and session.pid == lx.process.pid
            assert await asyncio.to_thread(exchange_process.probe_exchange, session.url, session.keys)
        finally:
            await lx.stop()

    asyncio.run(main())
    assert (tmp_path / "exchange" / "killed-once").exists()  # the first child really was killed
    assert len(notes) == 1 and "killed by SIGKILL before it reported its address" in notes[0][2]
    assert "starting it again" in notes[0][2]


@pytest.mark.expected_log(r"^heron\.app: the local exchange exited with status")
def test_a_child_that_keeps_dying_at_start_up_is_given_up_after_a_few_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.subsystems.exchange as exchange_subsystem

    monkeypatch.setenv("FAKE_EXCHANGE_BEHAVIOUR", "exit")
    monkeypatch.setattr(exchange_subsystem, "EXCHANGE_RETRY_PAUSE_S", 0.01, raising=False)
    monkeypatch.setattr(exchange_subsystem, "EXCHANGE_START_RETRIES", 2, raising=False)
    notes: list[tuple[str, ...]] = []
    ctx: Any = SimpleNamespace(lifecycle=SimpleNamespace(requested=False), notify=lambda *a: notes.append(a))
    with pytest.raises(ExchangeError, match="exited with status 3"):
        asyncio.run(exchange_subsystem.start_local_exchange(ctx, launcher(tmp_path)))
    assert len(notes) == 2 and all("starting it again" in note[2] for note in notes)


def test_missing_program_is_reported(tmp_path: Path) -> None:
    lx = LocalExchangeLauncher(tmp_path, LocalExchangeSettings(), module="services.no_such_exchange")
    with pytest.raises(ExchangeError, match="not in this build yet"):
        asyncio.run(lx.start())


def test_keys_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text('{"key_id": "K"}')
    with pytest.raises(ExchangeError, match="must hold"):
        read_keys_file(bad)
    bad.write_text("{")
    with pytest.raises(ExchangeError, match="not valid JSON"):
        read_keys_file(bad)


def test_connect_external_probes_with_the_keys(tmp_path: Path) -> None:
    async def main() -> None:
        lx = launcher(tmp_path)
        session = await lx.start()
        try:
            good = tmp_path / "good.json"
            good.write_text(json.dumps({"key_id": session.keys.key_id, "secret": session.keys.secret}))
            ext = await connect_external(session.url, good)
            assert not ext.owned and ext.url == session.url
            wrong = tmp_path / "wrong.json"
            wrong.write_text(json.dumps({"key_id": "nope", "secret": "nope-nope"}))
            with pytest.raises(ExchangeError, match="does not answer"):
                await connect_external(session.url, wrong)
        finally:
            await lx.stop()

    asyncio.run(main())


@pytest.mark.skipif(
    not exchange_program_available(), reason="services/exchange/__main__.py is not in this build yet"
)
def test_launcher_against_the_real_exchange(tmp_path: Path) -> None:
    async def main() -> None:
        lx = LocalExchangeLauncher(tmp_path / "exchange", LocalExchangeSettings(), startup_timeout=30)
        session = await lx.start()
        try:
            assert session.owned and session.url.startswith("http://127.0.0.1:")
            again = await LocalExchangeLauncher(tmp_path / "exchange", LocalExchangeSettings()).start()
            assert again.url == session.url and not again.owned
        finally:
            await lx.stop()

    asyncio.run(main())


def _args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"profile": "default", "data_dir": tmp_path / "data", "mode": None,
                               "exchange_url": None}  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def test_early_start_spawns_before_any_loop_and_start_takes_it_over(tmp_path: Path) -> None:
    lx = start_early(_args(tmp_path), module=FAKE)
    assert lx is not None and lx.process is not None  # running before any event loop exists
    try:
        data = json.loads(lx.session_file.read_text())
        assert set(data) == {"key_id", "secret"}  # the keys for --keys-file, not yet url/pid
        assert stat.S_IMODE(os.stat(lx.session_file).st_mode) == 0o600
        argv = json.loads(wait_for("argv.json", file_text(lx.exchange_dir / "argv.json"), 20))
        assert data["secret"] not in " ".join(argv) and "--keys-file" in argv
        seen: list[str] = []
        lx.listen_for_secret(seen.append)  # the log redactor learns the secret at once
        assert seen == [data["secret"]]
        session = asyncio.run(lx.start())
        assert session.owned and session.pid == lx.process.pid and session.keys.secret == data["secret"]
        assert json.loads(lx.session_file.read_text())["url"] == session.url
        # A second terminal on the same data dir does not start another one early: it reuses.
        assert start_early(_args(tmp_path), module=FAKE) is None
    finally:
        lx.stop_now()
    assert lx.process is None and not lx.session_file.exists()
    lx.stop_now()  # idempotent


def test_early_start_is_skipped_where_the_normal_path_decides(tmp_path: Path) -> None:
    assert start_early(_args(tmp_path, mode="alpaca-paper"), module=FAKE) is None
    assert start_early(_args(tmp_path, exchange_url="http://127.0.0.1:9"), module=FAKE) is None
    settings = tmp_path / "data" / "profiles" / "default" / "settings.json"
    settings.write_text("{not json")
    assert start_early(_args(tmp_path), module=FAKE) is None
    assert settings.read_text() == "{not json"  # left for load() to report and move aside
    settings.write_text(json.dumps({"mode": "alpaca-paper"}))
    assert start_early(_args(tmp_path), module=FAKE) is None
    assert not (tmp_path / "data" / "profiles" / "default" / "exchange" / "session.json").exists()


def test_early_start_stopped_when_never_taken_over(tmp_path: Path) -> None:
    lx = start_early(_args(tmp_path), module=FAKE)
    assert lx is not None and lx.process is not None
    proc = lx.process
    lx.stop_now()  # what main.py does when the run ends before the composition root took it over
    assert proc.poll() is not None and not lx.session_file.exists()


# -- one exchange, ours, never an orphan ----------------------------------------------------------


@pytest.mark.expected_log(r"^heron\.exchange: the local exchange recorded for \S+ \(pid")
def test_a_recorded_exchange_that_cannot_prove_itself_gets_no_keys_and_is_stopped(tmp_path: Path) -> None:
    async def main() -> None:
        first = launcher(tmp_path)
        session = await first.start()
        try:
            # session.json now names the right pid, port and data dir, but another secret
            data = json.loads(first.session_file.read_text())
            data["secret"] = "not-the-exchanges-secret"
            first.session_file.write_text(json.dumps(data))
            second = launcher(tmp_path)
            again = await second.start()
            try:
                assert again.owned and again.pid != session.pid  # a new one, not the unproven one
                assert first.process is not None
                assert first.process.wait(10) is not None  # the unproven exchange was stopped
            finally:
                await second.stop()
        finally:
            await first.stop()

    asyncio.run(main())


def test_identity_proof_binds_secret_directory_port_and_pid(tmp_path: Path) -> None:
    from services.exchange.identity import identity_proof

    base = identity_proof("s3cret", "ab" * 16, tmp_path, 4000, 12)
    assert base == identity_proof("s3cret", "ab" * 16, tmp_path / ".", 4000, 12)
    assert len({base, identity_proof("other", "ab" * 16, tmp_path, 4000, 12),
                identity_proof("s3cret", "cd" * 16, tmp_path, 4000, 12),
                identity_proof("s3cret", "ab" * 16, tmp_path / "x", 4000, 12),
                identity_proof("s3cret", "ab" * 16, tmp_path, 4001, 12),
                identity_proof("s3cret", "ab" * 16, tmp_path, 4000, 13)}) == 6  # fmt: skip
    assert "s3cret" not in base


def test_the_child_is_told_its_parent(tmp_path: Path) -> None:
    lx = start_early(_args(tmp_path), module=FAKE)
    assert lx is not None and lx.process is not None
    try:
        argv = json.loads(wait_for("argv.json", file_text(lx.exchange_dir / "argv.json"), 20))
        assert argv[argv.index("--exit-with-parent") + 1] == str(os.getpid())
        # the parent-death signal itself: tests/integration/test_faults_process.py kills a terminal
    finally:
        lx.stop_now()


def test_a_dead_child_is_reported_at_once_and_restarted_on_the_same_address(tmp_path: Path) -> None:
    import signal as signals

    async def main() -> None:
        lx = launcher(tmp_path)
        session = await lx.start()
        loop = asyncio.get_running_loop()
        deaths: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        lx.watch(loop, lambda pid, how: deaths.put_nowait((pid, how)))
        try:
            assert lx.process is not None
            os.kill(lx.process.pid, signals.SIGKILL)
            pid, how = await asyncio.wait_for(deaths.get(), 20)
            assert pid == session.pid and how == "was killed by SIGKILL"
            again = await lx.restart()
            assert again.url == session.url and again.keys == session.keys and again.pid != session.pid
            lx.watch(loop, lambda pid, how: deaths.put_nowait((pid, how)))
        finally:
            await lx.stop()
        assert deaths.empty()  # a stop asked for is not a death

    asyncio.run(main())


def test_a_full_disk_at_spawn_is_one_clear_error_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session file cannot be written (ENOSPC): an ExchangeError naming the file and "disk full"
    (start-up says it in one line), never an OSError traceback, and no child without its keys file."""
    import errno

    import app.local_exchange as local_exchange

    def full(*_a: object, **_k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_exchange, "atomic_write_text", full)
    lx = launcher(tmp_path)
    with pytest.raises(ExchangeError, match=r"disk full writing .*session\.json"):
        lx.spawn()
    assert lx.process is None


@pytest.mark.expected_log(r"^heron\.exchange: local exchange at \S+ its session file")
def test_a_restart_on_a_full_disk_needs_no_new_session_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child killed while the disk is full: the restart keeps its keys, so the session file that
    already holds them is not rewritten, and the exchange comes back (the chaos runs' disk_full plus
    child_kill: every restart failed on the session file until space returned)."""
    import errno
    import signal as signals

    import app.local_exchange as local_exchange

    async def main() -> None:
        lx = launcher(tmp_path)
        session = await lx.start()
        try:
            assert lx.process is not None
            os.kill(lx.process.pid, signals.SIGKILL)
            await asyncio.to_thread(lx.process.wait, 20)

            def full(*_a: object, **_k: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(local_exchange, "atomic_write_text", full)
            again = await lx.restart()
            assert again.url == session.url and again.keys == session.keys and again.pid != session.pid
        finally:
            await lx.stop()

    asyncio.run(main())


def test_an_oversized_keys_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "keys.json"
    with big.open("wb") as fh:
        fh.truncate(10 * 1024 * 1024)
    with pytest.raises(ExchangeError, match="byte limit"):
        read_keys_file(big)
