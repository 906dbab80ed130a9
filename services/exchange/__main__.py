"""``python -m services.exchange``: run the local Alpaca-compatible paper exchange.

Prints exactly one line ``listening on http://HOST:PORT`` (the real port, also for ``--port 0``)
when ready, and only after the SIGTERM / SIGINT handlers are installed. Keys come from
``--keys-file`` (JSON ``{"key_id","secret"}``), ``--key-id/--secret``, or DATA_DIR/keys.json
(created with fresh random keys, mode 0600, when absent). The secret is never printed. SIGTERM /
SIGINT shut down cleanly (websockets closed, venue state flushed).
Bad arguments: a one-line message on stderr and exit status 2.

One exchange per data directory: ``DATA_DIR/exchange.lock`` is locked (``flock``, released by the
kernel however the process ends) before keys.json or the venue database are touched; a second
exchange on the same directory refuses at once with one line naming the directory and the pid that
holds it. SIGTERM / SIGINT are caught from the first instruction of the program: one received
during start-up stops it before it serves, with nothing half-written and the lock released.

``--exit-with-parent PID``: the exchange ends when process PID ends (the terminal that started it
passes its own pid). On Linux the kernel sends SIGTERM when the parent dies (PR_SET_PDEATHSIG);
everywhere the exchange also checks every 0.5 s that PID is still its parent (or, when PID is not
its parent, still alive). It then shuts down as on SIGTERM and logs one line saying why.

Exit status: 0 stopped cleanly (SIGTERM, SIGINT, or the parent of --exit-with-parent gone, also
when that happened during start-up); 1 cannot listen on the address; 2 bad arguments or unusable
data directory; 3 the data directory is locked by another running exchange; 4 stopped because the
venue database was changed by another process (this exchange's state was stale; nothing of it was
written, see store.py).

The paper account is a margin account by default (``--account-type margin``: 2x Reg T buying power
from $2,000 equity, 4x intraday from $25,000, short sales, the pattern-day-trader protection under
$25,000); ``--account-type cash`` gives 1x buying power and no short sales (see rules.py). The
account class is read on every start; ``--cash`` (default 100000) only funds a new account.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

# Before anything slow (the imports below take a noticeable part of a second): from here on a
# SIGTERM / SIGINT is recorded and stops the exchange at its next step, never kills it midway.
_early_signals: list[str] = []


def _record_signal(signum: int, frame: FrameType | None) -> None:
    _early_signals.append(signal.Signals(signum).name)


def _install_early_handlers() -> None:
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, _record_signal)


if __name__ == "__main__":
    _install_early_handlers()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
from decimal import Decimal, InvalidOperation  # noqa: E402
from pathlib import Path  # noqa: E402

from aiohttp import web  # noqa: E402

from services.domain.hosts import is_loopback  # noqa: E402
from services.exchange.http.auth import ApiKey, generate_key, load_keys_file, write_keys_file  # noqa: E402
from services.exchange.http.server import EXCHANGE, ExchangeConfig, build_app  # noqa: E402
from services.exchange.lock import DataDirLock, DataDirLocked, acquire  # noqa: E402
from services.exchange.market.simulator import DEFAULT_RATE, MAX_RATE  # noqa: E402
from services.exchange.market.universe import build_universe  # noqa: E402

log = logging.getLogger("services.exchange")

EXIT_OK = 0
EXIT_CANNOT_LISTEN = 1
EXIT_USAGE = 2
EXIT_DATA_DIR_LOCKED = 3
EXIT_STALE_STATE = 4
PARENT_POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> _Parser:
    p = _Parser(
        prog="python -m services.exchange", description="Heron's local Alpaca-compatible paper exchange"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless --allow-remote)")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    p.add_argument("--data-dir", type=Path, required=True, help="state and keys.json directory")
    p.add_argument("--key-id", help="API key id (prefer --keys-file: argv is visible to other users)")
    p.add_argument("--secret", help="API secret (prefer --keys-file)")
    p.add_argument("--keys-file", type=Path, help='JSON file {"key_id": ..., "secret": ...}')
    p.add_argument("--symbols", nargs="*", default=[], help="extra stock tickers (space or comma separated)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated market and fills")
    p.add_argument("--rate-limit", type=int, default=200, help="REST requests per minute per key (0 = off)")
    p.add_argument("--always-open", action="store_true", help="stocks trade around the clock (demos, tests)")
    p.add_argument("--admin", action="store_true", help="mount fault injection at /_heron/admin")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="market-data messages/s in total")
    p.add_argument("--allow-remote", action="store_true", help="permit binding a non-loopback address")
    p.add_argument(
        "--account-type",
        choices=("margin", "cash"),
        default="margin",
        help="margin: 2x (4x intraday from $25,000) buying power, may short; cash: 1x, no shorts",
    )
    p.add_argument("--cash", default="100000", help="starting cash of a new paper account (USD)")
    p.add_argument("--log-level", default="WARNING", help="logging level for stderr")
    p.add_argument(
        "--exit-with-parent",
        type=int,
        metavar="PID",
        help="shut down cleanly when process PID (the program that started this one) ends",
    )
    return p


def _resolve_key(args: argparse.Namespace, parser: _Parser) -> tuple[ApiKey, str | None]:
    """The key pair and, when generated, a note saying where it was written."""
    if args.keys_file is not None:
        if args.key_id or args.secret:
            parser.error("give either --keys-file or --key-id/--secret, not both")
        try:
            return load_keys_file(args.keys_file), None
        except ValueError as exc:
            parser.error(str(exc))
    if args.key_id or args.secret:
        if not (args.key_id and args.secret):
            parser.error("--key-id and --secret go together")
        return ApiKey(args.key_id, args.secret), None
    path = args.data_dir / "keys.json"
    if path.exists():
        try:
            return load_keys_file(path), f"using the keys in {path}"
        except ValueError as exc:
            parser.error(f"{exc} (delete it to generate new keys)")
    key = generate_key()
    write_keys_file(path, key)
    return key, f"generated API keys written to {path} (mode 0600)"


def parse_config(argv: list[str] | None) -> tuple[ExchangeConfig, str, int, str | None, str]:
    parser = _parser()
    args = _parse_args(parser, argv)
    return _config(args, parser)


def _parse_args(parser: _Parser, argv: list[str] | None) -> argparse.Namespace:
    """Every check that writes nothing but the data directory itself."""
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if not is_loopback(args.host):
        if not args.allow_remote:
            parser.error(f"refusing to bind non-loopback host {args.host!r} without --allow-remote")
        print(f"warning: binding {args.host}: the exchange is reachable from the network", file=sys.stderr)
    if args.rate_limit < 0:
        parser.error("--rate-limit must be >= 0")
    if not 0 <= args.rate <= MAX_RATE:
        parser.error(f"--rate must be between 0 and {MAX_RATE:.0f}")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    try:
        build_universe(args.symbols)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"cannot use --data-dir {args.data_dir}: {exc.strerror}")
    if args.exit_with_parent is not None and args.exit_with_parent < 1:
        parser.error(f"--exit-with-parent must be a process id, got {args.exit_with_parent}")
    return args


def _config(args: argparse.Namespace, parser: _Parser) -> tuple[ExchangeConfig, str, int, str | None, str]:
    try:
        cash = Decimal(args.cash)
    except InvalidOperation:
        parser.error(f"--cash must be a number of dollars, got {args.cash!r}")
    if not cash.is_finite() or not Decimal(0) <= cash <= Decimal(10) ** 12:
        parser.error(f"--cash must be between 0 and 1000000000000, got {args.cash}")
    key, note = _resolve_key(args, parser)
    config = ExchangeConfig(
        data_dir=args.data_dir,
        key=key,
        symbols=tuple(args.symbols),
        seed=args.seed,
        rate_limit=args.rate_limit,
        always_open=args.always_open,
        admin=args.admin,
        rate=args.rate,
        starting_cash=cash,
        account_type=args.account_type,
    )
    return config, args.host, args.port, note, args.log_level


class ParentWatch:
    """Is the process given by --exit-with-parent still there? (See the module docstring.)"""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.direct = os.getppid() == pid  # PID is our parent: a change of parent means it died

    def arm(self) -> None:
        """Ask the kernel for SIGTERM when the parent dies (Linux); the poll covers the rest."""
        if not self.direct or not sys.platform.startswith("linux"):
            return
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    def alive(self) -> bool:
        if self.direct:
            return os.getppid() == self.pid
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:  # a parent killed but not yet reaped still answers kill(0): it is gone all the same
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state not in ("Z", "X")

    def gone_line(self) -> str:
        return f"parent process {self.pid} has exited; shutting down"


class _Stop:
    """Why the exchange stops: the first reason wins."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""
        self.code = EXIT_OK

    def __call__(self, reason: str, code: int = EXIT_OK) -> None:
        if not self.event.is_set():
            self.reason, self.code = reason, code
            self.event.set()


async def _watch_parent(watch: ParentWatch, stop: _Stop) -> None:
    while watch.alive():
        await asyncio.sleep(PARENT_POLL_SECONDS)
    stop(watch.gone_line())


async def serve(
    config: ExchangeConfig, host: str, port: int, note: str | None, parent: ParentWatch | None = None
) -> int:
    # The handlers come first: from the moment anything is printed (the keys note, the listening
    # line) a SIGTERM / SIGINT must mean a clean shutdown, not the signal's default action.
    stop = _Stop()
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if parent is not None and not parent.alive():  # PR_SET_PDEATHSIG, or the parent's own end
            stop(parent.gone_line())
        else:
            stop(f"{name} received; shutting down")

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    for name in _early_signals:  # received before the loop's handlers were in place
        on_signal(name)
    watcher = asyncio.ensure_future(_watch_parent(parent, stop)) if parent is not None else None
    try:
        return await _serve(config, host, port, note, stop)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if stop.code == EXIT_OK and stop.reason:  # a stale venue has said why itself
            (log.warning if stop.reason.startswith("parent") else log.info)("%s", stop.reason)


async def _serve(config: ExchangeConfig, host: str, port: int, note: str | None, stop: _Stop) -> int:
    if stop.event.is_set():
        return stop.code
    try:
        app = build_app(config)
    except sqlite3.Error as exc:  # a full disk, a damaged file: one line, not a traceback
        full = "full" in str(exc).lower()
        with contextlib.suppress(OSError):
            full = full or shutil.disk_usage(config.data_dir).free < 1 << 16
        why = f"disk full ({exc})" if full else str(exc)
        print(f"error: cannot open the venue database in {config.data_dir}: {why}", file=sys.stderr)
        return EXIT_USAGE
    venue = app[EXCHANGE].venue
    if hasattr(venue, "on_stale"):
        venue.on_stale = lambda reason: stop(reason, EXIT_STALE_STATE)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    if stop.event.is_set():  # a signal while the venue was opened: stop before serving
        await runner.cleanup()
        return stop.code
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    real_port = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            real_port = int(addr[1])
            break
    if note:
        print(note, file=sys.stderr, flush=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown}:{real_port}", flush=True)
    await stop.event.wait()
    await runner.cleanup()
    return stop.code


def main(argv: list[str] | None = None) -> int:
    _install_early_handlers()  # again for callers of main(); idempotent
    # Owner-only, whatever the caller's umask: the data directory (0700), the venue database, the
    # keys and logs hold account state and secrets. The terminal does the same (main.py).
    os.umask(0o077)
    parser = _parser()
    args = _parse_args(parser, argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    parent: ParentWatch | None = None
    if args.exit_with_parent is not None:
        parent = ParentWatch(args.exit_with_parent)
        parent.arm()
        if not parent.alive():  # gone before the kernel could be asked to tell us
            log.warning("%s", parent.gone_line())
            return EXIT_OK
    if _early_signals:
        log.warning("%s received during start-up; shutting down", _early_signals[0])
        return EXIT_OK
    try:
        lock: DataDirLock = acquire(args.data_dir)
    except DataDirLocked as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_DATA_DIR_LOCKED
    except OSError as exc:
        print(f"error: cannot lock --data-dir {args.data_dir}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, host, port, note, _ = _config(args, parser)
        return asyncio.run(serve(config, host, port, note, parent))
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        _install_early_handlers()  # the loop's handlers left with it; a late signal is no crash
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
