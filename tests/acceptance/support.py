"""Real-window acceptance harness: an X server (Xvfb) with a window manager (openbox), Heron's
``main.py`` on it as a person starts it, real input events (xdotool) and what is visible (screen
grabs read as pixels, window geometry from the X server, the running state report).

- :class:`Display` starts ``Xvfb -displayfd`` (the server picks a free display number) and openbox,
  and runs ``xdotool`` against it.
- :class:`ScreenGrabber` keeps one Qt process on the display that grabs the whole screen to a PNG on
  request (:meth:`ScreenGrabber.grab` returns the pixels as an ``H×W×3`` array).
- :class:`Terminal` is ``main.py`` in a subprocess (``QT_QPA_PLATFORM=xcb``, a fresh data directory,
  connected to an exchange the test started), with its window, log and state report.

Tests that need the tools call :func:`require_tools`: without Xvfb, openbox or xdotool they are
skipped with the reason, unless ``HERON_ACCEPTANCE_REQUIRED=1`` (CI sets it: there a missing tool
is a failure, not a silent skip).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("Xvfb", "openbox", "xdotool")
#: What the window title of the main window starts with (``Heron — LOCAL``).
MAIN_TITLE = "^Heron"

Pixels = np.ndarray[Any, np.dtype[np.uint8]]
T = TypeVar("T")


def until(what: str, check: Callable[[], T | None], timeout: float, *, every: float = 0.2) -> T:
    """:func:`~tests.support.polling.wait_for` for a check that answers None until it holds."""
    value = wait_for(what, check, timeout, every=every)
    assert value is not None
    return value


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def require_tools() -> None:
    """Skip (locally) or fail (``HERON_ACCEPTANCE_REQUIRED=1``, CI) without Xvfb, openbox, xdotool."""
    missing = missing_tools()
    if not missing:
        return
    why = (
        f"real-window acceptance tests need {', '.join(missing)} "
        "(Debian: apt-get install xvfb openbox xdotool; .ci/run installs them)"
    )
    if os.environ.get("HERON_ACCEPTANCE_REQUIRED") == "1":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True, slots=True)
class Geometry:
    """A window's position and size on the screen, in pixels."""

    x: int
    y: int
    width: int
    height: int


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``#4a1518`` → ``(74, 21, 24)``."""
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def _stop(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return proc.returncode


class Display:
    """Xvfb on a free display number, with openbox managing its windows."""

    def __init__(self, root: Path, width: int = 1920, height: int = 1080) -> None:
        self.root = root
        self.width = width
        self.height = height
        self.name = ""
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._wm: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path, width: int = 1920, height: int = 1080) -> Display:
        display = cls(root, width, height)
        try:
            display._start_server()
            display._start_wm()
        except BaseException:
            display.stop()
            raise
        return display

    def _start_server(self) -> None:
        # -noreset: the server keeps running unchanged when its last client leaves
        read_fd, write_fd = os.pipe()
        log = open(self.root / "xvfb.log", "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{self.width}x{self.height}x24",
                 "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_fd)
            log.close()
        # Xvfb writes the number and the newline in two writes: read up to the newline, or the
        # second write meets a closed pipe and the server dies
        received = b""
        deadline = time.monotonic() + 20
        try:
            while not received.endswith(b"\n"):
                ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read_fd, 64) if ready else b""
                if not chunk:
                    break  # timed out, or Xvfb exited
                received += chunk
        finally:
            os.close(read_fd)
        number = received.decode().strip()
        if not number.isdigit():
            raise RuntimeError(f"Xvfb did not start: {(self.root / 'xvfb.log').read_text(errors='replace')}")
        self.name = f":{number}"

    def _start_wm(self) -> None:
        log = open(self.root / "openbox.log", "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._wm = subprocess.Popen(
                ["openbox", "--sm-disable"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        # the number of desktops is an EWMH property: only a running window manager sets it
        wait_for("openbox managing the display", lambda: self.try_xdotool("get_num_desktops"), 20, every=0.1)

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, DISPLAY=self.name, **extra)

    def try_xdotool(self, *args: str) -> str | None:
        """xdotool's output, or None when it failed (no such window, nothing found)."""
        proc = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True, timeout=30)
        return proc.stdout if proc.returncode == 0 else None

    def xdotool(self, *args: str) -> str:
        proc = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args)[:200]} failed: {proc.stderr.strip()}")
        return proc.stdout

    def windows(self, *, pid: int | None = None, name: str | None = None) -> list[int]:
        """The visible top-level windows (of a process, or whose title matches ``name``)."""
        args = ["search", "--onlyvisible"]
        if pid is not None:  # --all: the process's windows with that title (xdotool's default is "or")
            args += ["--all", "--pid", str(pid)]
        args += ["--name", name if name is not None else "."]
        out = self.try_xdotool(*args)
        return [int(w) for w in out.split()] if out else []

    def geometry(self, window: int) -> Geometry:
        """Where the window's client area is on the screen and its size (xdotool)."""
        out = self.xdotool("getwindowgeometry", "--shell", str(window))
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return Geometry(int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"]))

    def stop(self) -> None:
        _stop(self._wm)
        _stop(self._xvfb)
        self._wm = self._xvfb = None


class ScreenGrabber:
    """One Qt process on the display grabbing the whole screen (or reading the clipboard) on request,
    a line on its stdin."""

    SCRIPT = (
        "import json, sys\n"
        "from PySide6.QtGui import QGuiApplication\n"
        "app = QGuiApplication(['heron-acceptance-grab'])\n"
        "screen = app.primaryScreen()\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    if line.strip() == 'clipboard':\n"
        "        print(json.dumps(app.clipboard().text()), flush=True)\n"
        "        continue\n"
        "    shot = screen.grabWindow(0)\n"
        "    print('ok' if shot.save(line.strip(), 'PNG') else 'failed', flush=True)\n"
    )

    def __init__(self, display: Display, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT], env=display.env(QT_QPA_PLATFORM="xcb"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            _stop(self._proc)
            raise RuntimeError("the screen grabber did not start")

    def grab(self, label: str = "shot") -> tuple[Path, Pixels]:
        """The whole screen now: the PNG kept in the test's folder (to look at after a failure) and
        its pixels as an ``height × width × 3`` RGB array."""
        from PySide6.QtGui import QImage

        assert self._proc.stdin is not None and self._proc.stdout is not None
        self.count += 1
        path = self.folder / f"{self.count:03d}-{label}.png"
        self._proc.stdin.write(f"{path}\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ok":
            raise RuntimeError(f"the screen could not be grabbed to {path}")
        image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
        w, h = image.width(), image.height()
        raw = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(h, image.bytesPerLine())
        return path, raw[:, : w * 3].reshape(h, w, 3).copy()

    def clipboard(self) -> str:
        """The display's clipboard text (what Ctrl+C in Heron copied)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("clipboard\n")
        self._proc.stdin.flush()
        text = json.loads(self._proc.stdout.readline())
        assert isinstance(text, str)
        return text

    def stop(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
            self._proc.stdin = None
        _stop(self._proc, timeout=5)


class Terminal:
    """``main.py`` on the display with a fresh data directory, connected to ``exchange`` (local mode)
    or started with the mode ``args`` name (``exchange=None``); ``env`` adds to its environment."""

    def __init__(
        self,
        display: Display,
        exchange: ExchangeProcess | None,
        root: Path,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.display = display
        self.data_dir = root / "data"
        self.report_path = root / "state-report.json"
        self.output_path = root / "heron.out"
        argv = [sys.executable, str(REPO / "main.py"), "--data-dir", str(self.data_dir)]
        if exchange is not None:
            argv += ["--exchange-url", exchange.url, "--exchange-keys", str(exchange.keys_file)]
        argv += ["--state-report", str(self.report_path), *args]
        env = display.env(
            QT_QPA_PLATFORM="xcb", DBUS_SESSION_BUS_ADDRESS="disabled:", PYTHONUNBUFFERED="1", **(env or {})
        )
        out = open(self.output_path, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.window = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir / "profiles" / "default" / "logs" / "heron.log"

    def output(self) -> str:
        """What Heron printed (stdout and stderr)."""
        try:
            return self.output_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"Heron exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
        return True

    def wait_window(self, timeout: float = 60) -> int:
        """The main window once the window manager shows it; returns its X window id."""

        def shown() -> int | None:
            self._alive()
            found = self.display.windows(pid=self.proc.pid, name=MAIN_TITLE)
            return found[0] if found else None

        self.window = until("Heron's main window on the screen", shown, timeout)
        return self.window

    def wait_log(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first match of ``pattern`` in Heron's log file."""
        regex = re.compile(pattern)
        return until(
            f"{pattern!r} in Heron's log",
            lambda: regex.search(self.log_text()) if self._alive() else None,
            timeout,
        )

    def report(self) -> dict[str, Any] | None:
        """The state report as last written (every 2 s while running, once more at quit)."""
        try:
            data = json.loads(self.report_path.read_text())
        except (OSError, ValueError):
            return None  # not written yet, or being replaced (written atomically: retried)
        return data if isinstance(data, dict) else None

    def geometry(self) -> Geometry:
        return self.display.geometry(self.window)

    def dialog(self, title: str, timeout: float = 15) -> int:
        """A visible top-level window of Heron whose title matches ``title`` (a regex); fails at once
        if Heron exits meanwhile."""
        return until(
            f"a Heron window titled {title!r}",
            lambda: (
                next(iter(self.display.windows(pid=self.proc.pid, name=title)), None)
                if self._alive()
                else None
            ),
            timeout,
            every=0.1,
        )

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM: Heron's ordered shutdown; returns its exit status."""
        return _stop(self.proc, timeout)


def holds_for(what: str, check: Callable[[], str | None], seconds: float, *, every: float = 0.2) -> None:
    """``check()`` answers None (all is well) or what is wrong; raises AssertionError the first time
    it is wrong within ``seconds``. For a property that must stay true (nothing waits for it)."""
    deadline = time.monotonic() + seconds
    while True:
        problem = check()
        if problem is not None:
            raise AssertionError(f"{what}: {problem}")
        if time.monotonic() >= deadline:
            return
        time.sleep(every)


def near(pixels: Pixels, colour: str, tolerance: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which pixels are within ``tolerance`` (per channel) of ``colour`` (``#rrggbb``)."""
    target = np.array(hex_rgb(colour), dtype=np.int16)
    return np.asarray(np.abs(pixels.astype(np.int16) - target).max(axis=-1) <= tolerance)


def colour_band(
    pixels: Pixels, colour: str, across: Geometry, *, min_share: float = 0.6, min_rows: int = 16
) -> tuple[int, int] | None:
    """The first run of at least ``min_rows`` screen rows, within the window's columns and its top
    half, where at least ``min_share`` of the pixels are ``colour``: ``(first row, last row)``.

    Rows are searched from the top of the screen: xdotool's y under a reparenting window manager is
    not always the client's top edge, while its x and width are."""
    left, right = max(0, across.x), min(pixels.shape[1], across.x + across.width)
    bottom = min(pixels.shape[0], across.y + across.height // 2)
    share = near(pixels[:bottom, left:right], colour, 6).mean(axis=1)
    start = None
    for row, value in enumerate(share):
        if value >= min_share:
            start = row if start is None else start
            continue
        if start is not None and row - start >= min_rows:
            return start, row - 1
        start = None
    return None


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of the screen, in pixels (``right`` and ``bottom`` inclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def centre(self) -> tuple[int, int]:
        return (self.left + self.right) // 2, (self.top + self.bottom) // 2

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1


def bounding_box(mask: np.ndarray[Any, np.dtype[np.bool_]], *, min_pixels: int = 1) -> Box | None:
    """The smallest box holding every True pixel of ``mask``, or None with fewer than ``min_pixels``."""
    if int(mask.sum()) < min_pixels:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))


def long_runs(
    mask: np.ndarray[Any, np.dtype[np.bool_]], min_length: int
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Only the pixels of ``mask`` in horizontal runs of at least ``min_length`` (a filled button,
    not the thin strokes of a candle or a letter)."""
    out = np.zeros_like(mask)
    for row in np.flatnonzero(mask.any(axis=1)):
        line = mask[row].astype(np.int8)
        edges = np.diff(np.concatenate(([0], line, [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for start, end in zip(starts, ends, strict=True):
            if end - start >= min_length:
                out[row, start:end] = True
    return out


def click(display: Display, x: int, y: int) -> None:
    """A left click at a screen position (the pointer moves there first)."""
    display.xdotool("mousemove", "--sync", str(x), str(y), "click", "1")


def client_box(display: Display, window: int) -> Box:
    """Where a window's client area is on the screen. The pointer is moved to the client's corner
    and read back: xdotool's window position under openbox is the frame's, some pixels off."""
    geometry = display.geometry(window)
    out = display.xdotool("mousemove", "--window", str(window), "--sync", "0", "0", "getmouselocation")
    where = dict(part.split(":", 1) for part in out.split() if ":" in part)
    x, y = int(where["x"]), int(where["y"])
    return Box(x, y, x + geometry.width - 1, y + geometry.height - 1)


def button_row(pixels: Pixels, box: Box, *, count: int, min_width: int = 40) -> list[Box]:
    """The lowest row of at least ``count`` buttons side by side inside ``box`` (a dialog's button
    box), left to right: runs of at least ``min_width`` pixels that differ from the box's background
    (the most common colour of its bottom margin), on rows where there are ``count`` of them."""
    area = pixels[box.top : box.bottom + 1, box.left : box.right + 1].astype(np.int32)
    packed = (area[..., 0] << 16) | (area[..., 1] << 8) | area[..., 2]
    values, counts = np.unique(packed[-3:], return_counts=True)  # the margin below the buttons
    other = packed != values[int(counts.argmax())]
    rows: dict[int, list[tuple[int, int]]] = {}
    for row in range(other.shape[0]):
        edges = np.diff(np.concatenate(([0], other[row].astype(np.int8), [0])))
        runs = [
            (int(s), int(e) - 1)
            for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
            if e - s >= min_width
        ]
        if len(runs) >= count:
            rows[row] = runs
    if not rows:
        return []
    bottom = max(rows)
    top = bottom
    while top - 1 in rows and len(rows[top - 1]) == len(rows[bottom]):
        top -= 1
    return [
        Box(box.left + s, box.top + top, box.left + e, box.top + bottom) for s, e in rows[(top + bottom) // 2]
    ]
