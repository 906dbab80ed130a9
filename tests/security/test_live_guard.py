"""Live mode cannot be entered without its typed confirmation (docs/DESIGN.md §3)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import LIVE_CONFIRMATION, parse_args
from tests.security.support import REPO, RefusingProxy


def _main(args: list[str], proxy: RefusingProxy, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        HTTPS_PROXY=proxy.url,
        HTTP_PROXY=proxy.url,
        PYTHONPATH=str(REPO),
        PYTHON_KEYRING_BACKEND="tests.security.support.PreloadedKeyring",
        QT_QPA_PLATFORM="offscreen",
    )
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args, "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_headless_live_without_confirmation_refuses_and_connects_nothing(tmp_path: Path) -> None:
    with RefusingProxy() as proxy:
        done = _main(
            ["--mode", "alpaca-live", "--headless", "--profile", "X", "--quit-after", "2"], proxy, tmp_path
        )
    assert done.returncode != 0
    assert "--confirm-live LIVE" in done.stderr and "nothing was connected" in done.stderr
    assert "Traceback" not in done.stderr
    assert proxy.requests == []  # not even an account check went out
    assert not (tmp_path / "data" / "profiles" / "X" / "exchange" / "session.json").exists()


@pytest.mark.parametrize("typed", ["live", "yes", "LIVE ", ""])
def test_a_wrong_confirmation_is_refused_at_parse_time(typed: str, tmp_path: Path) -> None:
    with RefusingProxy() as proxy:
        done = _main(["--mode", "alpaca-live", "--headless", "--confirm-live", typed], proxy, tmp_path)
    assert done.returncode == 2
    assert f"--confirm-live must be exactly {LIVE_CONFIRMATION}" in done.stderr
    assert "Traceback" not in done.stderr and proxy.requests == []


def test_confirmation_is_for_live_mode_only() -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--mode", "alpaca-paper", "--confirm-live", "LIVE"])
    assert exited.value.code == 2


def test_settings_cannot_smuggle_live_mode_past_the_guard(tmp_path: Path) -> None:
    """mode=alpaca-live in settings.json (no --mode) is still refused headless without the confirmation."""
    profile = tmp_path / "data" / "profiles" / "X"
    profile.mkdir(parents=True)
    (profile / "settings.json").write_text('{"schema_version": 2, "mode": "alpaca-live"}')
    with RefusingProxy() as proxy:
        done = _main(["--headless", "--profile", "X", "--quit-after", "2"], proxy, tmp_path)
    assert done.returncode != 0 and "--confirm-live" in done.stderr
    assert proxy.requests == []


def test_gui_dialog_connects_only_when_live_is_typed(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The GUI path: app.qt.live_confirm.ask_live_confirmation resolves True only for exactly LIVE."""
    from PySide6.QtWidgets import QInputDialog, QWidget

    from app.qt.live_confirm import ask_live_confirmation

    parent = QWidget()
    qtbot.addWidget(parent)

    async def answer(text: str, accept: bool) -> bool:
        task = asyncio.ensure_future(ask_live_confirmation(parent))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        dialog = parent.findChild(QInputDialog, "liveConfirmDialog")
        assert dialog is not None and dialog.isVisible()
        dialog.setTextValue(text)
        dialog.accept() if accept else dialog.reject()
        return await asyncio.wait_for(task, 5)

    def run(text: str, accept: bool) -> bool:
        import qasync
        from PySide6.QtWidgets import QApplication

        loop = qasync.QEventLoop(QApplication.instance())
        try:
            return loop.run_until_complete(answer(text, accept))
        finally:
            loop.close()

    assert run(LIVE_CONFIRMATION, True) is True
    assert run("live", True) is False
    assert run("LIVE", False) is False  # cancelled
