"""The pace at which market data reaches the loop thread: batches come no more often than a trader
needs, and a quote never waits longer than a trader reads as live (100 ms) for its batch. (The
panels repaint at the slower display pace: tests/widgets/test_pacer.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from app.subsystems.marketdata import FRAME_RATE
from services.marketdata import streams
from services.marketdata.streams import MarketDataThread


class _Main:
    """The loop thread: takes each batch at once."""

    def is_closed(self) -> bool:
        return False

    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        fn(*args)


class _Pipeline:
    """Hands out the newest quote's arrival time as the batch, when a quote is waiting."""

    def __init__(self) -> None:
        self.waiting: float | None = None

    def tick(self) -> float | None:
        out, self.waiting = self.waiting, None
        return out


def test_quotes_reach_the_window_within_80_ms_at_most_12_5_batches_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(streams.time, "monotonic", lambda: now[0])  # read when the thread is made
    pipeline = _Pipeline()
    shown: list[tuple[float, float]] = []  # (quote arrived, batch handed over)
    thread = MarketDataThread(
        pipeline,  # type: ignore[arg-type]
        lambda arrived: shown.append((arrived, now[0])),  # type: ignore[arg-type]
        lambda *a: None,
        frame_interval=1 / FRAME_RATE,
    )
    thread._main_loop = _Main()  # type: ignore[assignment]
    start = now[0]
    for _ in range(10_000):  # ten seconds of frames every millisecond, each carrying a quote
        now[0] += 0.001
        if pipeline.waiting is None:
            pipeline.waiting = now[0]
        thread._maybe_frame()
    batches_per_s = len(shown) / (now[0] - start)
    assert batches_per_s <= 12.5 + 0.1
    assert max(handed - arrived for arrived, handed in shown) <= 0.080 + 1e-9
