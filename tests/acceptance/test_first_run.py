"""First run: paper and live modes without usable API keys say what to do (in the window: a clear
panel instead of half-built trading panels; headless: exit 1 with one line, at once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.support import REPO, Display, Pixels, ScreenGrabber, Terminal, colour_band, near, until
from widgets import theme

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
#: a working keyring holding nothing (tests/security/support.py: in memory, never on disk)
EMPTY_KEYRING = {"PYTHON_KEYRING_BACKEND": "tests.security.support.MemoryKeyring"}
MODES = {"paper": ["--mode", "alpaca-paper"], "live": ["--mode", "alpaca-live", "--confirm-live", "LIVE"]}


def _headless(tmp_path: Path, mode: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DBUS_SESSION_BUS_ADDRESS="disabled:", **env)
    # no --quit-after: the run must end by itself
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *mode, "--headless", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=full_env,
    )  # fmt: skip


@pytest.mark.parametrize("mode", sorted(MODES))
def test_headless_without_a_keyring_exits_at_once_with_one_line(tmp_path: Path, mode: str) -> None:
    proc = _headless(tmp_path, MODES[mode], NO_KEYRING)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "needs its API keys from the OS keyring" in lines[0] and "--mode local" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_headless_without_stored_keys_names_the_keyring_entry(tmp_path: Path) -> None:
    proc = _headless(tmp_path, MODES["paper"], EMPTY_KEYRING)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "no API keys are stored for profile 'default' in alpaca-paper mode" in lines[0], lines[0]
    assert "heron-terminal / default:alpaca-paper" in lines[0] and "--mode local" in lines[0], lines[0]


@pytest.mark.acceptance
@pytest.mark.parametrize("mode", sorted(MODES))
def test_window_without_a_keyring_says_what_to_do(
    display: Display, screen: ScreenGrabber, tmp_path: Path, terminals: list[Terminal], mode: str
) -> None:
    args = [a for a in MODES[mode] if a not in ("--confirm-live", "LIVE")]  # the window asks itself
    heron = Terminal(display, None, tmp_path, *args, env=NO_KEYRING)
    terminals.append(heron)
    window = heron.wait_window()
    heron.wait_log(r"no usable API keys for alpaca-\w+: the window explains what to do")
    where = heron.geometry()

    def title_shown() -> tuple[Pixels] | None:
        """The screen once the explanation's title is painted across the middle of the window, in
        the caution colour."""
        _, shot = screen.grab(mode)
        middle = shot[:, where.x + where.width // 4 : where.x + 3 * where.width // 4]
        return (shot,) if near(middle, theme.WARN, 40).sum() >= 300 else None

    (shot,) = until(f"the explanation on the screen (grabs in {screen.folder})", title_shown, 20, every=0.3)
    # and no trading panels half built around services that never started
    log_text = heron.log_text()
    assert "panel left out" not in log_text and "trading panels installed" not in log_text
    assert colour_band(shot, theme.DRIFT_CRITICAL_BG, where) is None

    # File → Settings… (Ctrl+,) is there, as the steps say: a second window opens
    display.xdotool("windowactivate", "--sync", str(window))
    display.xdotool("key", "ctrl+comma")

    def settings_window() -> list[int] | None:
        others = [w for w in display.windows(pid=heron.proc.pid) if w != window]
        return others or None

    until("the settings dialog", settings_window, 20)
