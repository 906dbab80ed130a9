#!/usr/bin/env python3
"""Start Heron: ``uv run main.py [--mode local|alpaca-paper|alpaca-live] ...`` (see ``--help``).

Order matters here: parse the arguments, then run the checks that would otherwise end in a crash
deep inside Qt (an unusable PySide6 build, no display), and only then import the application.
Nothing heavy is imported at module level, so a bad argument is reported in milliseconds.

Start-up speed (a usable window matters more than anything after it):
- in local mode the exchange child is started right after the checks, before the application is
  imported, so its start-up runs on the other core while this process imports Qt and the services;
- with a window, the service modules are imported on a worker thread while this thread imports Qt
  and the panels (app/preload.py): imports wait on files and shared libraries part of the time;
- the cyclic garbage collector is off until the window's panels are installed (the composition
  root then freezes everything loaded so far out of future collections and turns it back on):
  collections over the freshly imported modules are wasted work on the critical path.
The GIL switch interval stays at Python's 5 ms: 1 ms was measured (paired runs of bench_ui's quote
storm) and made the GUI thread's frames slower (median and event-loop lag worse in every pair, p99
not better): the GUI thread is then preempted by the market-data thread during its own frames too.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

_STARTED = time.monotonic()

#: Until the event loop's own handlers take over (app.lifecycle), these end the run.
EARLY_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _on_early_signal(signum: int, _frame: object) -> None:
    """A signal before the lifecycle exists: stop the exchange child (if one was started), say
    so on stderr and in the log (when it is open), exit 128+signum. No shutdown sequence exists
    yet to run; nothing has been journaled that needs one."""
    name = signal.Signals(signum).name
    # a module still being imported when the signal lands may not have its functions yet: then it
    # has started no child either
    stop_children = getattr(sys.modules.get("app.local_exchange"), "stop_children_now", None)
    stopped: list[int] = stop_children() if stop_children is not None else []
    text = f"stopped by {name} during start-up"
    if stopped:
        text += f"; the local exchange (pid {', '.join(map(str, stopped))}) was stopped with it"
    print(f"heron: {text}", file=sys.stderr, flush=True)
    logging = sys.modules.get("logging")
    with contextlib.suppress(Exception):  # logging half imported, or a handler failing: stderr has it
        root = logging.getLogger() if logging is not None else None
        if logging is not None and root is not None and root.handlers:
            logging.getLogger("heron.app").error("%s", text)
            for handler in root.handlers:
                with contextlib.suppress(Exception):  # exiting; stderr already has the line
                    handler.flush()
    os._exit(128 + signum)


def install_early_signal_handlers() -> None:
    for sig in EARLY_SIGNALS:
        signal.signal(sig, _on_early_signal)


def end_with_launcher() -> None:
    """Started by ``uv run`` (the README's way): end when uv ends, however it ends. uv passes
    SIGINT and SIGTERM on to Heron, but a SIGKILL of uv would leave Heron (and its exchange) running
    unseen, holding the profile. The kernel's parent-death signal turns that into a SIGTERM, which
    runs the normal shutdown. Not for other parents: a shell's ``nohup`` or a service manager means
    Heron should outlive them."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/comm", encoding="utf-8") as fh:
            launcher = fh.read().strip()
    except OSError:
        return
    if launcher != "uv":
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # uv ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    install_early_signal_handlers()  # the first thing this program does
    end_with_launcher()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_python_and_qt(need_qt: bool) -> str | None:
    """Return a one-line problem description, or None when this interpreter can run Heron."""
    if sys.version_info < (3, 11):  # noqa: UP036 - main.py may be started by any python3
        return f"Heron needs Python 3.11 or newer; this is {sys.version.split()[0]}"
    if not need_qt:
        return None
    from importlib.metadata import PackageNotFoundError, version

    found = None
    for dist in ("PySide6-Essentials", "PySide6"):
        try:
            found = version(dist)
        except PackageNotFoundError:
            continue
        # PySide6 6.12.0 drops references to None/True on CPython 3.11 and the interpreter aborts
        # within a second of real work; 3.12+ hides it (immortal objects).
        if sys.version_info[:2] == (3, 11) and _version_tuple(found) >= (6, 12):
            return (
                f"{dist} {found} crashes Python 3.11 (it corrupts reference counts); "
                "install PySide6-Essentials>=6.11,<6.12 (run `uv sync`) or use Python 3.12+"
            )
    if found is None:
        return "PySide6 is not installed: run `uv sync` (or start with --headless to run without a window)"
    return None


def check_display(headless: bool) -> str | None:
    """Qt aborts the whole process (rc 134) when it finds no display; say why before that happens."""
    if headless or not sys.platform.startswith("linux"):
        return None
    if os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display found (DISPLAY and WAYLAND_DISPLAY are unset): set QT_QPA_PLATFORM=offscreen "
        "to render without a screen, or start with --headless to run without a window"
    )


def lock_profile(args: argparse.Namespace) -> str | None:
    """Take this profile's instance lock for the whole run (app/instance.py); the one-line refusal
    when another Heron holds it. A data directory that cannot hold the lock is left to the normal
    start-up path, which names the problem."""
    from app.instance import ProfileInUse, acquire
    from app.paths import resolve_paths

    paths = resolve_paths(args.profile, args.data_dir)
    try:
        acquire(paths.profile_dir, paths.profile)
    except ProfileInUse as exc:
        return str(exc)
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - before importing code written for 3.11
        print(f"heron: Heron needs Python 3.11 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    os.umask(0o077)  # everything Heron creates (data directory, logs, exchange, reports) is owner-only
    from app.cli import parse_args
    from app.launch import Launch

    args = parse_args(argv, prog="main.py")
    launch = Launch(started_monotonic=_STARTED)
    problem = check_python_and_qt(need_qt=not args.headless) or check_display(args.headless)
    if problem:
        print(f"heron: {problem}", file=sys.stderr)
        return 1
    in_use = lock_profile(args)
    if in_use:
        print(f"heron: {in_use}", file=sys.stderr)
        return 1
    gc.disable()  # re-enabled by app.runtime.settle_gc once the window is usable (and in any case below)
    from app.local_exchange import start_early

    launch.early_exchange = start_early(args)
    try:
        if not args.headless:
            from app.preload import import_window_modules, start_service_imports

            service_imports = start_service_imports()  # worker thread: services, alpaca, SQLAlchemy
            lane_start = time.monotonic()
            import_window_modules()  # meanwhile here: Qt, the window and its panels
            window_lane = time.monotonic() - lane_start
            service_imports.wait()
            launch.import_lanes = (window_lane, service_imports.seconds, time.monotonic() - lane_start)
        from app import run

        return run(args, launch)
    finally:
        gc.enable()
        if launch.early_exchange is not None:
            # Normally already stopped by the shutdown sequence; this covers a run that ended
            # (a start-up error) before the composition root took the exchange over.
            launch.early_exchange.stop_now()


if __name__ == "__main__":
    sys.exit(main())
