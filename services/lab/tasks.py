"""What runs on a Dask worker: one backtest point, returning metrics only.

A task is (strategy class, parameters, the packed bars' future, window, costs, cancel flag name) →
a small dict. The bars arrive once per worker (broadcast) and are decoded once per worker process
(cached by content hash); the equity curve never leaves the worker (a chosen point's curve is
recomputed locally: the backtest is deterministic). A strategy that raises comes back as an error
in the result, never as a task exception; a cancelled sweep's running backtest stops at its next
cancel check (every :data:`CHECK_EVERY_BARS` bars, a remote look at most every
:data:`CANCEL_POLL_S`).
"""

from __future__ import annotations

import bisect
import os
import socket
import time
import traceback
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.lab.packing import PackedBars, compress, decompress, unpack_bars, utc_to_micros
from services.strategies.api import Strategy
from services.strategies.backtest import BacktestCancelled, BacktestConfig, BacktestResult, run_backtest

#: Bars between two cancel checks (a check is a clock read; the remote flag is read at most every
#: CANCEL_POLL_S), so a running point stops well within a second of a cancel.
CHECK_EVERY_BARS: Final = 256
CANCEL_POLL_S: Final = 0.2
#: Decoded datasets a worker process keeps (a walk-forward uses one; two sweeps at once use two; a
#: year of one-minute bars of one symbol decodes to some 70 MB).
CACHE_SIZE: Final = 2


@dataclass(frozen=True, slots=True)
class Dataset:
    """The bars every point of a sweep replays, as held by each worker (one object for the whole sweep)."""

    packed: PackedBars
    digest: str


@dataclass(frozen=True, slots=True)
class Costs:
    initial_cash: str
    commission_per_share: str
    slippage_bps: str
    timeframe: Timeframe

    def config(self) -> BacktestConfig:
        return BacktestConfig(
            initial_cash=Decimal(self.initial_cash),
            commission_per_share=Decimal(self.commission_per_share),
            slippage_bps=Decimal(self.slippage_bps),
            timeframe=self.timeframe,
        )


def dataset_blob(packed: PackedBars) -> bytes:
    """The packed bars as one compressed blob: the argument of the loader task that produces the
    worker-side :class:`Dataset`. A task (not a scatter) so that the scheduler can compute it again
    when every worker holding it died (scattered data would be lost for good)."""
    return compress(packed)


def load_dataset(blob: bytes) -> Dataset:
    """The loader task: runs on one worker; the others fetch its result once each."""
    packed = decompress(blob)
    return Dataset(packed, packed.digest)


_decoded: OrderedDict[str, tuple[list[Bar], list[int]]] = OrderedDict()


def decoded(dataset: Dataset) -> tuple[list[Bar], list[int]]:
    """The bars (and their times in microseconds) of ``dataset``, decoded once per process."""
    hit = _decoded.get(dataset.digest)
    if hit is not None:
        _decoded.move_to_end(dataset.digest)
        return hit
    bars = unpack_bars(dataset.packed)
    entry = (bars, list(dataset.packed.ts))
    _decoded[dataset.digest] = entry
    while len(_decoded) > CACHE_SIZE:
        _decoded.popitem(last=False)
    return entry


def window(bars: list[Bar], times: list[int], start: datetime | None, end: datetime | None) -> list[Bar]:
    """The bars with ``start <= ts < end`` (either side open when None)."""
    lo = 0 if start is None else bisect.bisect_left(times, utc_to_micros(start))
    hi = len(bars) if end is None else bisect.bisect_left(times, utc_to_micros(end))
    return bars[lo:hi]


class RemoteFlag:
    """A ``threading.Event``-like cancel flag backed by a named ``distributed.Event``, read remotely
    at most every :data:`CANCEL_POLL_S` (run_backtest asks often; the scheduler is asked rarely)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._event: Any = None
        self._next = 0.0
        self._set = False

    def is_set(self) -> bool:
        if self._set:
            return True
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + CANCEL_POLL_S
        if self._event is None:
            from distributed import Event

            self._event = Event(self.name)
        self._set = bool(self._event.is_set())
        return self._set


def metrics_of(result: BacktestResult, initial_cash: Decimal) -> dict[str, float | int | None]:
    """The point's figures over its measured window. A run measured from a later bar (a walk-forward's
    out-of-sample run) reports as final equity ``initial_cash`` plus the profit made inside the window,
    not the equity carried over from its warm-up, so it agrees with its total return."""
    final = initial_cash + (result.final_equity - result.initial_equity)
    return {
        "total_return": result.total_return,
        "sharpe": result.sharpe,
        "max_drawdown": result.max_drawdown,
        "trades": len(result.trades),
        "win_rate": result.win_rate,
        "final_equity": float(final),
    }


def worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_point(
    cls: type[Strategy],
    params: Mapping[str, Any],
    dataset: Dataset,
    costs: Costs,
    cancel: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
    measure_from: datetime | None = None,
) -> dict[str, Any]:
    """One point on a worker → ``{"metrics"|"error"|"cancelled", "worker", "elapsed_s"}``."""
    began = time.perf_counter()
    out: dict[str, Any] = {"worker": worker_name()}
    try:
        bars, times = decoded(dataset)
        chosen = bars if start is None and end is None else window(bars, times, start, end)
        result = run_backtest(
            cls(params),
            chosen,
            config=costs.config(),
            cancel=RemoteFlag(cancel) if cancel else None,  # type: ignore[arg-type]
            progress_every=CHECK_EVERY_BARS,
            measure_from=measure_from,
        )
    except BacktestCancelled:
        out["cancelled"] = True
    except Exception as exc:  # the strategy or its parameters: an error result, not a lost task
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc(limit=8)
    else:
        if result.error:
            out["error"] = result.error
        else:
            out["metrics"] = metrics_of(result, costs.config().initial_cash)
    out["elapsed_s"] = time.perf_counter() - began
    return out
