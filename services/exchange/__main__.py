"""``python -m services.exchange``: run the local Alpaca-compatible paper exchange.

Prints exactly one line ``listening on http://HOST:PORT`` (the real port, also for ``--port 0``)
when ready, and only after the SIGTERM / SIGINT handlers are installed. Keys come from
``--keys-file`` (JSON ``{"key_id","secret"}``), ``--key-id/--secret``, or DATA_DIR/keys.json
(created with fresh random keys, mode 0600, when absent). The secret is never printed. SIGTERM /
SIGINT shut down cleanly (websockets closed, venue state flushed).
Bad arguments: a one-line message on stderr and exit status 2.

The paper account is a margin account by default (``--account-type margin``: 2x Reg T buying power
from $2,000 equity, 4x intraday from $25,000, short sales, the pattern-day-trader protection under
$25,000); ``--account-type cash`` gives 1x buying power and no short sales (see rules.py). The
account class is read on every start; ``--cash`` (default 100000) only funds a new account.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from aiohttp import web

from services.exchange.auth import ApiKey, generate_key, load_keys_file, write_keys_file
from services.exchange.market import DEFAULT_RATE, MAX_RATE
from services.exchange.server import ExchangeConfig, build_app
from services.exchange.universe import build_universe

log = logging.getLogger("services.exchange")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> _Parser:
    p = _Parser(prog="python -m services.exchange",
                description="Heron's local Alpaca-compatible paper exchange")
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
    p.add_argument("--account-type", choices=("margin", "cash"), default="margin",
                   help="margin: 2x (4x intraday from $25,000) buying power, may short; cash: 1x, no shorts")
    p.add_argument("--cash", default="100000", help="starting cash of a new paper account (USD)")
    p.add_argument("--log-level", default="WARNING", help="logging level for stderr")
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if not _is_loopback(args.host):
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
        args.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"cannot use --data-dir {args.data_dir}: {exc.strerror}")
    try:
        cash = Decimal(args.cash)
    except InvalidOperation:
        parser.error(f"--cash must be a number of dollars, got {args.cash!r}")
    if not cash.is_finite() or not Decimal(0) <= cash <= Decimal(10) ** 12:
        parser.error(f"--cash must be between 0 and 1000000000000, got {args.cash}")
    key, note = _resolve_key(args, parser)
    config = ExchangeConfig(
        data_dir=args.data_dir, key=key, symbols=tuple(args.symbols), seed=args.seed,
        rate_limit=args.rate_limit, always_open=args.always_open, admin=args.admin, rate=args.rate,
        starting_cash=cash, account_type=args.account_type,
    )
    return config, args.host, args.port, note, args.log_level


async def serve(config: ExchangeConfig, host: str, port: int, note: str | None) -> int:
    # The handlers come first: from the moment anything is printed (the keys note, the listening
    # line) a SIGTERM / SIGINT must mean a clean shutdown, not the signal's default action.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    app = build_app(config)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    real_port = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            real_port = int(addr[1])
            break
    if note:
        print(note, file=sys.stderr, flush=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown}:{real_port}", flush=True)
    await stop.wait()
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    config, host, port, note, level = parse_config(argv)
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return asyncio.run(serve(config, host, port, note))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
