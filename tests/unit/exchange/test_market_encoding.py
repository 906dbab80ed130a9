"""The simulator's column-wise msgpack encoding: valid Alpaca messages, parsed by alpaca-py, framed right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import numpy as np
import pytest
from alpaca.data.live.crypto import CryptoDataStream
from alpaca.data.live.stock import StockDataStream

from services.domain.calendar import MarketCalendar
from services.exchange.market.encoding import Batch, array_header, timestamp64
from services.exchange.market.history import NS, HistoryGenerator
from services.exchange.market.simulator import MarketSimulator
from services.exchange.market.universe import build_universe

START = datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)
KEYS = {
    ("t", False): {"T", "S", "i", "x", "p", "s", "c", "z", "t"},
    ("q", False): {"T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t"},
    ("t", True): {"T", "S", "p", "s", "t", "i", "tks"},
    ("q", True): {"T", "S", "bp", "bs", "ap", "as", "t"},
    ("o", True): {"T", "S", "t", "b", "a", "r"},
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


Steps = list[tuple[int, int, Batch]]  # (previous step ns, this step ns, batch)


def steps(rate: float, seconds: float, step: float = 0.05) -> tuple[MarketSimulator, Steps]:
    uni = build_universe()
    cal = MarketCalendar(always_open=False)
    clock = Clock(START)
    sim = MarketSimulator(uni, cal, HistoryGenerator(uni, cal, 9), seed=9, rate=rate, clock=clock)
    out: Steps = []
    prev = sim.now_ns()
    for _ in range(round(seconds / step)):
        clock.now += timedelta(seconds=step)
        now = sim.now_ns()
        out.append((prev, now, sim.step(now)))
        prev = now
    return sim, out


def test_timestamp64_is_msgpacks_timestamp_ext() -> None:
    rng = np.random.default_rng(1)
    ns = np.concatenate(
        [
            rng.integers(0, 2**62 // 2**28, 200) * 1_000 + rng.integers(0, 1000, 200),
            np.array([0, NS, 1_709_650_807 * NS, 1_709_650_807 * NS + 999_999_999]),
        ]
    )
    payload = timestamp64(ns).astype(">u8").tobytes()
    for j, v in enumerate(ns.tolist()):
        decoded = msgpack.unpackb(b"\xd7\xff" + payload[8 * j : 8 * j + 8])
        assert decoded == msgpack.Timestamp.from_unix_nano(v)
        assert decoded.to_unix_nano() == v


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65_535, 65_536])
def test_array_header_sizes(n: int) -> None:
    assert msgpack.unpackb(array_header(n) + b"\xc0" * n) == [None] * n


def test_hot_messages_have_alpacas_fields_and_types() -> None:
    sim, out = steps(20_000, 1.0)
    last_id = 0
    seen: set[tuple[str, bool]] = set()
    for lo, hi, batch in out:
        msgs = batch.messages()
        assert len(msgs) == len(batch)
        assert [ord(m["T"]) for m in msgs] == batch.kinds.tolist()
        assert [sim.index[m["S"]] for m in msgs] == batch.syms.tolist()
        stamps = [m["t"].to_unix_nano() for m in msgs if m["T"] in "tq"]
        assert stamps == sorted(stamps) and all(lo <= t < hi for t in stamps)
        for m in msgs:
            crypto = "/" in m["S"]
            seen.add((m["T"], crypto))
            assert set(m) == KEYS[(m["T"], crypto)], m
            assert isinstance(m["t"], msgpack.Timestamp)
            if m["T"] == "t":
                assert isinstance(m["i"], int) and m["i"] > last_id
                last_id = m["i"]
                assert isinstance(m["p"], float) and m["p"] > 0
                assert isinstance(m["s"], float if crypto else int) and m["s"] > 0
                if not crypto:
                    assert m["c"] == ["@"] and m["x"] == "V" and m["z"] in "ABC"
                else:
                    assert m["tks"] in ("B", "S")
            elif m["T"] == "q":
                assert isinstance(m["bp"], float) and m["bp"] < m["ap"]
                assert isinstance(m["bs"], float if crypto else int)
                if not crypto:
                    assert m["c"] == ["R"] and m["bx"] == m["ax"] == "V"
    assert seen == set(KEYS)
    assert last_id == sim.latest_trade("AAPL")[3]
    # The NBBO the venue sees is the last quote sent.
    quotes = [m for _, _, b in out for m in b.messages() if m["T"] == "q" and m["S"] == "AAPL"]
    nbbo = sim.nbbo("AAPL")
    assert nbbo is not None and float(nbbo.bid) == quotes[-1]["bp"] and int(nbbo.ask_size) == quotes[-1]["as"]


def test_every_message_parses_with_alpaca_py() -> None:
    _, out = steps(300, 61.0, step=1.0)  # crosses a minute: bars, daily bars, maybe late prints
    stock, crypto = StockDataStream("k", "s"), CryptoDataStream("k", "s")
    kinds: set[str] = set()
    for _, _, batch in out:
        for m in batch.messages():
            raw = dict(m)
            parsed: Any = (crypto if "/" in m["S"] else stock)._cast(m)
            assert parsed.symbol == raw["S"] and parsed.timestamp.tzinfo is not None
            assert parsed.timestamp == raw["t"].to_datetime()
            kinds.add(raw["T"])
            if raw["T"] == "t":
                assert parsed.price == raw["p"] and parsed.size == raw["s"] and parsed.id == raw["i"]
            elif raw["T"] == "q":
                assert parsed.bid_price == raw["bp"] and parsed.ask_size == raw["as"]
            elif raw["T"] in "bud":
                assert parsed.trade_count == raw["n"] and parsed.vwap == raw["vw"]
    assert {"t", "q", "b", "d", "o"} <= kinds


def test_frames_cut_the_selection_in_order() -> None:
    _, out = steps(20_000, 0.3)
    batch = Batch.concat([b for _, _, b in out])
    msgs = batch.messages()
    rng = np.random.default_rng(4)
    for select in (None, rng.random(len(batch)) < 0.3, np.zeros(len(batch), bool), batch.kinds == ord("t")):
        frames = batch.frames(select, max_messages=97)
        got: list[dict[str, Any]] = []
        for frame, count in frames:
            decoded = msgpack.unpackb(frame)
            assert isinstance(decoded, list) and len(decoded) == count and 0 < count <= 97
            got.extend(decoded)
        want = msgs if select is None else [m for m, keep in zip(msgs, select.tolist(), strict=True) if keep]
        assert got == want
    assert batch.frames(None, max_messages=10**6)[0][1] == len(batch)
    assert Batch.empty().messages() == [] and Batch.empty().frames() == []
