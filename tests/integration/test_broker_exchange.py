"""AlpacaBroker and credential checks against the real local exchange over loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.broker.alpaca import AlpacaBroker
from services.broker.base import BrokerNotFound, OrderQuery
from services.broker.credentials import CredentialsError, validate_credentials
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import OrderRequest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LocalExchange:
    """``python -m services.exchange`` as a child process (until tests/support/exchange.py lands)."""

    url: str
    key_id: str
    secret: str
    proc: subprocess.Popen[str]

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            f"{self.url}/_heron/admin/{path.lstrip('/')}",
            data=json.dumps(body or {}).encode(),
            headers={
                "APCA-API-KEY-ID": self.key_id,
                "APCA-API-SECRET-KEY": self.secret,
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"{}")


def start_exchange(tmp: Path, *extra: str) -> LocalExchange:
    key_id, secret = f"PK{uuid.uuid4().hex[:12].upper()}", uuid.uuid4().hex
    keys = tmp / "keys.json"
    keys.write_text(json.dumps({"key_id": key_id, "secret": secret}))
    keys.chmod(0o600)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.exchange",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(tmp),
            "--keys-file",
            str(keys),
            "--always-open",
            "--admin",
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            break
        if proc.poll() is not None:
            raise RuntimeError("the exchange exited before listening")
    else:
        proc.kill()
        raise RuntimeError("the exchange did not start")
    return LocalExchange(line.split()[-1].strip(), key_id, secret, proc)


def stop_exchange(ex: LocalExchange) -> None:
    ex.proc.terminate()
    try:
        ex.proc.wait(10)
    except subprocess.TimeoutExpired:
        ex.proc.kill()
        ex.proc.wait(10)
    if ex.proc.stdout is not None:
        ex.proc.stdout.close()


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalExchange]:
    ex = start_exchange(tmp_path_factory.mktemp("exchange"))
    yield ex
    stop_exchange(ex)


def broker_for(ex: LocalExchange, **kw: Any) -> AlpacaBroker:
    return AlpacaBroker(ex.key_id, ex.secret, environment="local", base_url=ex.url, **kw)


def test_order_round_trip(exchange: LocalExchange) -> None:
    async def main() -> None:
        broker = broker_for(exchange)
        try:
            account = await broker.get_account()
            assert account.equity > 0
            coid = f"it-{uuid.uuid4().hex[:12]}"
            req = OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(1),
                limit_price=Decimal("1.00"),
                client_order_id=coid,
            )
            order = await broker.submit_order(req)
            assert order.client_order_id == coid and order.limit_price == Decimal("1")
            found = await broker.get_order_by_client_id(coid)
            assert found is not None and found.id == order.id
            open_ids = {o.id for o in await broker.list_orders(OrderQuery(status="open"))}
            assert order.id in open_ids
            await broker.cancel_order(order.id)
            for _ in range(50):
                if (await broker.get_order(order.id)).status is OrderStatus.CANCELED:
                    break
                await asyncio.sleep(0.05)
            assert (await broker.get_order(order.id)).status is OrderStatus.CANCELED
            assert await broker.get_order_by_client_id("never-sent") is None
            with pytest.raises(BrokerNotFound):
                await broker.get_order(str(uuid.uuid4()))
            assert isinstance(await broker.get_positions(), list)
            clock = await broker.get_clock()
            assert clock.timestamp.tzinfo is not None
        finally:
            await broker.close()

    asyncio.run(main())


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> degraded:")
@pytest.mark.parametrize("fault", ["429", "5xx"])
def test_error_burst_backs_off_without_blocking_the_loop(exchange: LocalExchange, fault: str) -> None:
    async def main() -> None:
        broker = broker_for(exchange)
        ticks = 0
        pending = True

        async def ticker() -> None:
            """Runs on the same loop: it only advances while the loop is free."""
            nonlocal ticks
            while pending:
                await asyncio.sleep(0.01)
                ticks += 1

        try:
            await broker.get_account()  # warm up: the first call builds pydantic validators (GIL-bound)
            exchange.admin(f"rest/{fault}", {"count": 3})
            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            started = time.perf_counter()
            account = await broker.get_account()
            took = time.perf_counter() - started
            pending = False
            await task
            assert account.status == "ACTIVE"
            assert broker.latency.stats("get_account") is not None
            # answers are timed (warm-up, success); the 3 failed calls are counted as failures, not
            # as latency samples, and the success after them clears the failing state
            assert broker.latency.stats("get_account").count == 2
            assert broker.latency.failures == 3 and broker.latency.failing() is None
            assert took > 0.3  # it really waited (backoff), ...
            # ... while the loop kept running other tasks: a backoff that blocked the loop (a
            # time.sleep on it) would let the ticker run at most once during the whole call. How fast
            # the loop answers under a burst is measured by the stream benchmark, not here.
            assert ticks >= 3, f"the loop ran other tasks {ticks} time(s) during a {took:.2f} s call"
        finally:
            exchange.admin("reset")
            await broker.close()

    asyncio.run(main())


def test_credentials(exchange: LocalExchange) -> None:
    async def main() -> None:
        ident = await validate_credentials(
            exchange.key_id, exchange.secret, environment="local", base_url=exchange.url
        )
        assert ident.environment == "local" and ident.status == "ACTIVE"
        with pytest.raises(CredentialsError, match="refused by the local exchange"):
            await validate_credentials(exchange.key_id, "wrong", environment="local", base_url=exchange.url)
        # paper keys with live mode selected (the local exchange stands in for the live URL)
        with pytest.raises(CredentialsError, match="these are paper keys but live mode was selected"):
            await validate_credentials(exchange.key_id, "wrong", environment="live", live_url=exchange.url)

    asyncio.run(main())


def test_crypto_position_read_and_closed_under_its_pair(exchange: LocalExchange) -> None:
    """The exchange lists the position as ``BTCUSD`` like Alpaca (alpaca-py #179, #537); Heron's
    adapter reads it, looks it up and closes it as ``BTC/USD``, and names close-all's entry by the
    pair (alpaca-py test_close_all_positions: ``BTCUSD`` outside, an order for ``BTC/USD`` inside)."""

    async def main() -> None:
        broker = broker_for(exchange)
        try:
            req = OrderRequest(
                "BTC/USD",
                OrderSide.BUY,
                OrderType.MARKET,
                TimeInForce.GTC,
                qty=Decimal("0.01"),
                client_order_id=f"it-{uuid.uuid4().hex[:12]}",
            )
            order = await broker.submit_order(req)
            for _ in range(100):
                if (await broker.get_order(order.id)).status is OrderStatus.FILLED:
                    break
                await asyncio.sleep(0.05)
            held = {p.symbol: p.qty for p in await broker.get_positions()}
            assert held.get("BTC/USD") == Decimal("0.01") and "BTCUSD" not in held
            one = await broker.get_position("BTC/USD")
            assert one is not None and one.symbol == "BTC/USD" and one.qty == Decimal("0.01")
            results = await broker.close_all_positions(cancel_orders=True)
            btc = [r for r in results if r.symbol == "BTC/USD"]
            assert len(btc) == 1 and btc[0].status == 200 and btc[0].order is not None
        finally:
            await broker.close()

    asyncio.run(main())
