from __future__ import annotations

import pytest

from services.marketdata.coalescer import Coalescer


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_at_most_30_flushes_per_second() -> None:
    clock = Clock()
    c = Coalescer(max_rate=30, clock=clock)
    flushes = 0
    for i in range(10_000):  # 10k updates over one second, a flush attempt after each
        clock.t = i / 10_000
        c.put_quote("AAPL", i)
        if c.flush() is not None:
            flushes += 1
    assert 29 <= flushes <= 30


def test_quotes_conflate_to_latest_and_trades_merge() -> None:
    c = Coalescer(clock=Clock())
    for i in range(5):
        c.put_quote("AAPL", {"bid": 100 + i})
        c.put_quote("MSFT", {"bid": 200 + i})
    c.put_trade("AAPL", 10.0, 5, 1)
    c.put_trade("AAPL", 12.0, 1, 2)
    c.put_trade("AAPL", 9.0, 4, 3)
    f = c.flush()
    assert f is not None
    assert f.quotes == {"AAPL": {"bid": 104}, "MSFT": {"bid": 204}}
    t = f.trades["AAPL"]
    assert (t.last, t.high, t.low, t.volume, t.count, t.ts_ns) == (9.0, 12.0, 9.0, 10, 3, 3)
    assert c.stats.quotes_conflated == 8
    assert c.flush(force=True) is None  # nothing waiting


def test_bounded_buffers_drop_oldest_and_count() -> None:
    c = Coalescer(max_symbols=3, max_items=4, clock=Clock())
    for s in "ABCDE":
        c.put_quote(s, s)
    for i in range(10):
        c.put_item(i)
    f = c.flush()
    assert f is not None
    assert list(f.quotes) == ["C", "D", "E"]
    assert f.items == (6, 7, 8, 9)
    assert c.stats.dropped_quotes == 2 and c.stats.dropped_items == 6 and f.dropped_total == 8


@pytest.mark.expected_log(r"^services\.marketdata\.coalescer: execution events backing up: \S+ waiting for")
def test_executions_never_dropped_and_come_first() -> None:
    clock = Clock()
    c = Coalescer(max_symbols=1, max_items=1, clock=clock)
    for i in range(50_000):
        c.put_execution(("fill", i))
        c.put_item(i)
    c.put_quote("AAPL", "q")
    f = c.flush()
    assert f is not None
    assert len(f.executions) == 50_000 and f.executions[0] == ("fill", 0)
    assert c.stats.execution_high_water == 50_000
    assert f.items == (49_999,)
    # a flush carrying only executions is still delivered
    clock.t = 1.0
    c.put_execution("late")
    f2 = c.flush()
    assert f2 is not None and f2.executions == ("late",) and f2.market_data_count == 0


def test_rate_limit_returns_none_until_due() -> None:
    clock = Clock()
    c = Coalescer(max_rate=30, clock=clock)
    c.put_quote("A", 1)
    assert c.flush() is not None
    c.put_quote("A", 2)
    clock.t = 0.02
    assert c.flush() is None and c.next_due_in() > 0
    clock.t = 1 / 30
    f = c.flush()
    assert f is not None and f.quotes == {"A": 2}
