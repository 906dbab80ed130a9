"""Local exchange throughput: orders through real alpaca-py, and market-data messages to one client.

``exchange_orders_per_s``: 500 orders submitted from 4 threads with alpaca-py's TradingClient over
loopback, each acknowledged (HTTP 200 + parsed Order): every other one a limit far from the market
(it rests), the others marketable market buys, which the exchange answers as accepted and fills
afterwards on trade_updates as Alpaca does; the run waits until every marketable order has filled.
``exchange_stream_msgs_per_s``: trades+quotes for 500 symbols with the simulator in storm mode
(150k msgs/s), received and msgpack-decoded (Timestamp ext objects, as alpaca-py decodes) by ONE
websocket client subscribed to every trade and quote on /v2/sip. Only messages the client actually
decoded are counted. After a warm-up (until the start-up backlog is drained, at most 3 s), three
5-s windows are measured on the same exchange; the value is their median, with min/max, and beside
it what the simulator generated in the same windows (all symbols; a few crypto ones never go to
/v2/sip), what the server queued for this client, the frames it dropped, the age of the newest
message of each frame when it was decoded (delivery lag), the mean duration of a simulator step on
the exchange's event loop (generation + encoding + fan-out) and the share of loop time it takes, the
CPU seconds per second of the exchange process and of this client, and the load average.
``exchange_stream_saturation``: the same client with the simulator asked for 400k msgs/s, to show
where the machine saturates (generated vs delivered vs dropped); informative, no goal.
The exchange runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import msgpack

from services.exchange.market.universe import synthetic_tickers
from tests.support.exchange import ExchangeProcess

ORDERS = 500
THREADS = 4
STREAM_SECONDS = 5.0
WINDOWS = 3
WARMUP_MAX_S = 3.0
STORM_RATE = 150_000
SATURATION_RATE = 400_000
SATURATION_SECONDS = 4.0


def _orders_per_s(ex: ExchangeProcess) -> float:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

    local = threading.local()

    def client() -> TradingClient:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
            c._retry = 0
        return c

    resting = LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00
    )
    marketable = MarketOrderRequest(symbol="HTBX", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)

    def submit(i: int) -> str:
        return str(client().submit_order(marketable if i % 2 else resting).id)  # type: ignore[union-attr]

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(submit, range(20)))  # warm up connections
        started = time.perf_counter()
        ids = list(pool.map(submit, range(ORDERS)))
        elapsed = time.perf_counter() - started
    assert len(set(ids)) == ORDERS
    expected_fills = (20 + ORDERS) // 2
    deadline = time.monotonic() + 30
    while ex.admin("/stats")["venue"]["fills"] < expected_fills:  # partial fills finish on the sweep
        if time.monotonic() > deadline:
            raise AssertionError("the marketable orders did not all fill")
        time.sleep(0.1)
    return ORDERS / elapsed


def _cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process from /proc (None where /proc is unavailable)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _counters(ex: ExchangeProcess) -> dict[str, int]:
    stats = ex.admin("/stats")
    market, streams = stats["market"], stats["datastream"]
    return {
        "generated": market["trades"] + market["quotes"],
        "queued": streams["messages"],
        "dropped_frames": streams["dropped_frames"],
        "clock_ns": market["clock_ns"],
        "steps": market["steps"],
        "step_ns": market["step_ns_total"],
    }


async def _measure_windows(ex: ExchangeProcess, windows: int, seconds: float) -> list[dict[str, float]]:
    """Connect one msgpack client, subscribe to every trade and quote, then measure ``windows``."""
    # The bench reads the subprocess's pid only to sample its CPU time from /proc.
    proc = getattr(ex, "_proc", None)
    pid = proc.pid if proc is not None else None
    results: list[dict[str, float]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{ex.ws_url}/v2/sip", headers={"Content-Type": "application/msgpack"}, max_msg_size=0
        ) as ws,
    ):
        await ws.receive_bytes()
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": ex.key_id, "secret": ex.secret}))
        await ws.receive_bytes()
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "trades": ["*"], "quotes": ["*"]}))
        await ws.receive_bytes()
        # Warm up until the start-up backlog is drained (newest message < 100 ms old), at most 3 s.
        warm_until = time.perf_counter() + WARMUP_MAX_S
        while time.perf_counter() < warm_until:
            warm: list[dict[str, Any]] = msgpack.unpackb(await ws.receive_bytes())
            if warm and time.time() - warm[-1]["t"].to_unix_nano() / 1e9 < 0.1:
                break
        for _ in range(windows):
            before = await asyncio.to_thread(_counters, ex)
            cpu_server0, cpu_client0 = _cpu_seconds(pid), time.process_time()
            received = frames = 0
            lags: list[float] = []
            started = time.perf_counter()
            end = started + seconds
            while True:
                frame = await ws.receive_bytes()
                batch: list[dict[str, Any]] = msgpack.unpackb(frame)
                received += sum(1 for m in batch if m["T"] in ("t", "q"))
                frames += 1
                if batch:
                    lags.append(time.time() - batch[-1]["t"].to_unix_nano() / 1e9)
                now = time.perf_counter()
                if now >= end:
                    break
            elapsed = now - started
            cpu_server1, cpu_client1 = _cpu_seconds(pid), time.process_time()
            after = await asyncio.to_thread(_counters, ex)
            lags.sort()
            # The exchange's counters are rated over the exchange's own clock between the two reads.
            server_s = max(1e-9, (after["clock_ns"] - before["clock_ns"]) / 1e9)
            step_ns = after["step_ns"] - before["step_ns"]
            results.append(
                {
                    "delivered": received / elapsed,
                    "generated": (after["generated"] - before["generated"]) / server_s,
                    "queued": (after["queued"] - before["queued"]) / server_s,
                    "dropped_frames": after["dropped_frames"] - before["dropped_frames"],
                    "step_ms": step_ns / 1e6 / max(1, after["steps"] - before["steps"]),
                    "loop_share": step_ns / 1e9 / server_s,
                    "frames_per_s": frames / elapsed,
                    "lag_median_ms": 1000 * lags[len(lags) // 2] if lags else float("nan"),
                    "lag_max_ms": 1000 * lags[-1] if lags else float("nan"),
                    "server_cpu": (
                        (cpu_server1 - cpu_server0) / elapsed
                        if cpu_server0 is not None and cpu_server1 is not None
                        else float("nan")
                    ),
                    "client_cpu": (cpu_client1 - cpu_client0) / elapsed,
                }
            )
    return results


def _summary(windows: list[dict[str, float]]) -> dict[str, Any]:
    delivered = [w["delivered"] for w in windows]
    med = lambda key: round(statistics.median(w[key] for w in windows), 2)  # noqa: E731
    return {
        "value": round(statistics.median(delivered)),
        "unit": "msgs/s",
        "min": round(min(delivered)),
        "max": round(max(delivered)),
        "windows": len(windows),
        "window_s": STREAM_SECONDS,
        "generated_msgs_per_s": round(med("generated")),
        "queued_for_client_msgs_per_s": round(med("queued")),
        "dropped_frames": int(sum(w["dropped_frames"] for w in windows)),
        "frames_per_s": med("frames_per_s"),
        "exchange_step_ms_mean": med("step_ms"),
        "exchange_loop_share_in_steps": med("loop_share"),
        "lag_median_ms": med("lag_median_ms"),
        "lag_max_ms": round(max(w["lag_max_ms"] for w in windows), 1),
        "exchange_cpu_s_per_s": med("server_cpu"),
        "client_cpu_s_per_s": med("client_cpu"),
    }


def run() -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with ExchangeProcess.start(extra_args=["--rate", "0"]) as ex:
        orders = _orders_per_s(ex)
    symbols = synthetic_tickers(500)
    args = ["--symbols", *symbols[:486]]  # plus the default universe: 500 symbols
    with ExchangeProcess.start(extra_args=["--rate", str(STORM_RATE), *args]) as ex:
        storm = _summary(asyncio.run(_measure_windows(ex, WINDOWS, STREAM_SECONDS)))
    with ExchangeProcess.start(extra_args=["--rate", str(SATURATION_RATE), *args]) as ex:
        saturated = _summary(asyncio.run(_measure_windows(ex, 1, SATURATION_SECONDS)))
    saturated["window_s"] = SATURATION_SECONDS
    load = os.getloadavg()
    return {
        "exchange_orders_per_s": {
            "value": round(orders, 1),
            "unit": "orders/s",
            "goal": ">= 500 (500 orders, half of them filled after the answer, 4 threads, real alpaca-py)",
        },
        "exchange_stream_msgs_per_s": {
            **storm,
            "goal": f">= 100000 to one msgpack client (500 symbols, simulator at {STORM_RATE})",
            "loadavg_1m": [round(load_before, 2), round(load[0], 2)],
        },
        "exchange_stream_saturation": {
            **saturated,
            "note": f"simulator asked for {SATURATION_RATE} msgs/s; informative, no goal",
        },
    }


if __name__ == "__main__":
    print(run())
