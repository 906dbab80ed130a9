"""Heron's command line: the parser, its validation and the typed values it produces.

Bad input exits with status 2 and one clear line on stderr, never a traceback (argparse's
convention). Only the standard library is imported here: main.py parses before anything heavy.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

MODES = ("local", "alpaca-paper", "alpaca-live")
ON_EXIT_POLICIES = ("leave", "cancel-all")
LIVE_CONFIRMATION = "LIVE"
DEFAULT_SCREENSHOT_DELAY_S = 3.0

_PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STRATEGY_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class StrategySpec:
    """``--start-strategy NAME[:key=value,...]``; values stay text, the strategy parses them."""

    name: str
    params: dict[str, str] = field(default_factory=dict)


class CliError(Exception):
    """An invalid argument; the message is one line fit to show a person."""


class HeronArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (plus a pointer to --help) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_strategy_spec(text: str) -> StrategySpec:
    """Parse ``NAME[:key=value,...]``; raises :class:`argparse.ArgumentTypeError` on bad syntax."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not _STRATEGY_NAME_RE.match(name):
        raise argparse.ArgumentTypeError(
            f"invalid strategy {text!r}: expected NAME[:key=value,...] with a name like sma_crossover"
        )
    params: dict[str, str] = {}
    if sep and rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise argparse.ArgumentTypeError(
                    f"invalid strategy parameter {item!r} in {text!r}: expected key=value"
                )
            if key in params:
                raise argparse.ArgumentTypeError(f"strategy parameter {key!r} given twice in {text!r}")
            params[key] = value.strip()
    return StrategySpec(name=name, params=params)


def _profile(text: str) -> str:
    if not _PROFILE_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"invalid profile name {text!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return text


#: Bounds of every duration on the command line (seconds). Below the minimum a timer fires faster
#: than the services can do anything useful; above the maximum the value is a typo, not a plan.
QUIT_AFTER_RANGE = (0.1, 30 * 86_400.0)
BAR_SECONDS_RANGE = (0.1, 86_400.0)


def _duration(option: str, low: float, high: float) -> Callable[[str], float]:
    """An argparse type for a duration in seconds within [low, high]: no 0, negative, NaN or inf."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option}: invalid number of seconds {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{option}: seconds must be a positive number, got {text!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{option}: seconds must be between {low:g} and {high:g}, got {text!r}"
            )
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {value}")
    return value


def _has_host_and_port(text: str, schemes: tuple[str, ...]) -> bool:
    """``text`` is ``SCHEME://HOST:PORT`` with one of ``schemes`` and a valid port."""
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme in schemes and bool(parts.hostname) and port is not None


def _http_url(text: str) -> str:
    if not _has_host_and_port(text, ("http", "https")):
        raise argparse.ArgumentTypeError(f"invalid exchange URL {text!r}: expected http://HOST:PORT")
    return text.rstrip("/")


def _db_url(text: str) -> str:
    if "://" not in text:
        raise argparse.ArgumentTypeError(
            f"invalid database URL {text!r}: expected an SQLAlchemy URL such as sqlite:///path/heron.db"
        )
    return text


#: An operator's reason is journaled and logged: one line of text, of a length a person writes.
MAX_REASON_CHARS = 500


def _reason_problem(reason: str) -> str | None:
    """Why an operator's reason cannot be journaled as given (control characters would forge log
    lines; a huge one is not a reason), or None."""
    if len(reason) > MAX_REASON_CHARS:
        return f"the reason is {len(reason):,} characters; at most {MAX_REASON_CHARS} are journaled"
    bad = sorted({f"U+{ord(c):04X}" for c in reason if c.isprintable() is False and c != " "})
    if bad:
        return f"the reason holds control characters ({', '.join(bad[:5])}); write it on one line"
    return None


def build_parser(prog: str = "main.py") -> HeronArgumentParser:
    parser = HeronArgumentParser(
        prog=prog,
        description="Heron: a desktop trading terminal for Alpaca with a built-in local paper exchange.",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="local (default: Heron's own paper exchange), alpaca-paper or alpaca-live",
    )
    parser.add_argument("--profile", type=_profile, default="default", help="settings profile name")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: per user)")
    parser.add_argument("--db", type=_db_url, default=None, help="SQLAlchemy database URL")
    parser.add_argument(
        "--exchange-url", type=_http_url, default=None, help="connect local mode to a running exchange"
    )
    parser.add_argument(
        "--exchange-keys",
        type=Path,
        default=None,
        help='JSON file {"key_id": ..., "secret": ...} for --exchange-url',
    )
    parser.add_argument("--screenshot", type=Path, default=None, help="write a PNG of the window and quit")
    parser.add_argument(
        "--quit-after",
        type=_duration("--quit-after", *QUIT_AFTER_RANGE),
        default=None,
        help=f"quit after this many seconds (with --screenshot: default {DEFAULT_SCREENSHOT_DELAY_S:g})",
    )
    parser.add_argument("--headless", action="store_true", help="run the services without a window")
    parser.add_argument(
        "--start-strategy",
        type=parse_strategy_spec,
        action="append",
        default=[],
        metavar="NAME[:k=v,...]",
        help="start a strategy at launch (repeatable)",
    )
    parser.add_argument("--state-report", type=Path, default=None, help="write a JSON state report at quit")
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics",
    )
    parser.add_argument(
        "--confirm-live",
        default=None,
        metavar="LIVE",
        help="headless alpaca-live only: type LIVE to confirm trading real money",
    )
    parser.add_argument(
        "--bar-seconds",
        type=_duration("--bar-seconds", *BAR_SECONDS_RANGE),
        default=None,
        help="bar interval for strategies and shadow models (default: 1 in local mode, 60 otherwise)",
    )
    parser.add_argument(
        "--on-exit",
        choices=ON_EXIT_POLICIES,
        default="leave",
        help="open orders at quit: leave them working (default) or cancel-all",
    )
    parser.add_argument("--script", type=Path, default=None, help="JSON list of orders to submit (headless)")
    parser.add_argument(
        "--release-halt",
        default=None,
        metavar="REASON",
        help="release a kill-switch HALT kept from an earlier run; the reason is journaled",
    )
    parser.add_argument(
        "--accept-journal-rollback",
        default=None,
        metavar="REASON",
        help="accept a journal rollback (or a lost database) named at start-up; the reason is journaled",
    )
    _add_sweep_arguments(parser)
    return parser


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of workers {text!r}") from None
    from services.lab.cluster import local_workers_problem

    problem = local_workers_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def _scheduler(text: str) -> str:
    if not _has_host_and_port(text, ("tls", "tcp")):
        raise argparse.ArgumentTypeError(
            f"invalid scheduler address {text!r}: expected tls://HOST:PORT (or tcp://127.0.0.1:PORT)"
        )
    return text


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    sweep = parser.add_argument_group("strategy lab (headless parameter sweep)")
    sweep.add_argument("--sweep", type=Path, default=None, metavar="SPEC.json",
                       help="with --headless: run the sweep SPEC.json (docs/sweeps.md) and quit")  # fmt: skip
    sweep.add_argument("--sweep-report", type=Path, default=None, metavar="OUT.json",
                       help="where --sweep writes its JSON report")  # fmt: skip
    sweep.add_argument("--scheduler", type=_scheduler, default=None, metavar="ADDRESS",
                       help="run sweeps on this Dask scheduler (default: a local cluster)")  # fmt: skip
    sweep.add_argument("--workers", type=_workers, default=None, metavar="N",
                       help="worker processes of the local cluster (default: cores - 1)")  # fmt: skip
    sweep.add_argument("--allow-insecure-tcp", action="store_true",
                       help="accept a tcp:// scheduler off this machine (no authentication)")  # fmt: skip
    sweep.add_argument("--sweep-new", action="store_true",
                       help="start a fresh sweep even when the same SPEC's last sweep did not complete "
                       "(by default that one is resumed)")  # fmt: skip
    sweep.add_argument("--tls-ca", type=Path, default=None, help="CA certificate for a tls:// scheduler")
    sweep.add_argument(
        "--tls-cert", type=Path, default=None, help="client certificate for a tls:// scheduler"
    )
    sweep.add_argument("--tls-key", type=Path, default=None, help="client key for a tls:// scheduler")


def _validate_sweep(args: argparse.Namespace) -> None:
    sweep = getattr(args, "sweep", None)
    if sweep is None:
        for flag, value in (("--sweep-report", args.sweep_report), ("--scheduler", args.scheduler),
                            ("--workers", args.workers),
                            ("--sweep-new", args.sweep_new or None)):  # fmt: skip
            if value is not None:
                raise CliError(f"{flag} goes with --sweep")
        return
    if not args.headless:
        raise CliError("--sweep runs without a window: add --headless (the window has the Strategy lab)")
    if not sweep.is_file():
        raise CliError(f"--sweep: no such file: {sweep}")
    if args.sweep_report is None:
        raise CliError("--sweep needs --sweep-report OUT.json (where the results go)")
    parent = args.sweep_report.expanduser().resolve().parent
    if not parent.is_dir():
        raise CliError(f"--sweep-report: the folder {parent} does not exist")
    if args.scheduler is not None and args.workers is not None:
        raise CliError("--workers sizes the local cluster; a --scheduler brings its own workers")
    for flag in ("script", "start_strategy", "state_report"):
        if getattr(args, flag, None):
            raise CliError(f"--sweep runs no trading services: --{flag.replace('_', '-')} does not apply")


def validate(args: argparse.Namespace) -> None:
    """Cross-argument checks; raises :class:`CliError` with a one-line message."""
    if (args.exchange_url is None) != (args.exchange_keys is None):
        raise CliError("--exchange-url and --exchange-keys must be given together")
    if args.exchange_url is not None and args.mode not in (None, "local"):
        raise CliError(f"--exchange-url connects local mode only; it cannot be used with --mode {args.mode}")
    if args.exchange_keys is not None and not args.exchange_keys.is_file():
        raise CliError(f"--exchange-keys: no such file: {args.exchange_keys}")
    if args.screenshot is not None:
        if args.headless:
            raise CliError("--screenshot needs the window; it cannot be combined with --headless")
        if args.screenshot.suffix.lower() != ".png":
            raise CliError(f"--screenshot writes a PNG: give a file name ending in .png ({args.screenshot})")
        parent = args.screenshot.expanduser().resolve().parent
        if not parent.is_dir():
            raise CliError(f"--screenshot: the folder {parent} does not exist")
        if args.quit_after is None:
            args.quit_after = DEFAULT_SCREENSHOT_DELAY_S
    if args.state_report is not None:
        parent = args.state_report.expanduser().resolve().parent
        if not parent.is_dir():
            raise CliError(f"--state-report: the folder {parent} does not exist")
    if args.confirm_live is not None:
        if args.mode != "alpaca-live":
            raise CliError("--confirm-live is only for --mode alpaca-live")
        if args.confirm_live != LIVE_CONFIRMATION:
            raise CliError(f"--confirm-live must be exactly {LIVE_CONFIRMATION} (got {args.confirm_live!r})")
    if args.script is not None and not args.script.is_file():
        raise CliError(f"--script: no such file: {args.script}")
    if args.release_halt is not None and not args.release_halt.strip():
        raise CliError("--release-halt needs a reason (it is journaled with the release)")
    accept = getattr(args, "accept_journal_rollback", None)
    if accept is not None and not accept.strip():
        raise CliError("--accept-journal-rollback needs a reason (it is journaled with the acceptance)")
    for flag, reason in (("--release-halt", args.release_halt), ("--accept-journal-rollback", accept)):
        problem = _reason_problem(reason) if reason is not None else None
        if problem:
            raise CliError(f"{flag}: {problem}")
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise CliError(f"--data-dir: {args.data_dir} exists and is not a folder")
    _validate_sweep(args)


def parse_args(argv: list[str] | None = None, prog: str = "main.py") -> argparse.Namespace:
    """Parse and validate; exits with status 2 and one clear line on any bad argument."""
    parser = build_parser(prog)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    try:
        validate(args)
    except CliError as exc:
        parser.error(str(exc))
    return args
