from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgpack
import pytest

from services.marketdata.pipeline import MarketDataPipeline
from services.marketdata.recorder import RecordingError, SessionRecorder, SessionReplayer, read_frames

T0 = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000


def ts(seconds: float) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(T0_NS + int(seconds * 1e9))


def frame(*msgs: dict) -> bytes:
    return msgpack.packb(list(msgs), datetime=True)


def session_frames() -> list[tuple[float, bytes]]:
    out = []
    for i in range(150):  # 150 s of AAPL trades and quotes, one frame a second
        t = i * 1.0
        out.append(
            (
                T0.timestamp() + t + 0.01,
                frame(
                    {
                        "T": "q",
                        "S": "AAPL",
                        "bp": 100.0 + i / 100,
                        "bs": 1,
                        "ap": 100.02 + i / 100,
                        "as": 2,
                        "t": ts(t),
                        "bx": "V",
                        "ax": "V",
                        "c": ["R"],
                        "z": "C",
                    },
                    {
                        "T": "t",
                        "S": "AAPL",
                        "p": 100.01 + i / 100,
                        "s": 10,
                        "t": ts(t),
                        "i": i,
                        "x": "V",
                        "c": ["@"],
                        "z": "C",
                    },
                ),
            )
        )
    out.append((T0.timestamp() + 151, frame({"T": "subscription", "trades": ["AAPL"]})))
    return out


def test_pipeline_decodes_into_book_candles_and_batches() -> None:
    controls: list[dict] = []
    p = MarketDataPipeline(control=controls.append, wall_clock=lambda: T0.timestamp())
    for received, data in session_frames():
        p.process_frame(data, received)
    assert p.messages == 300 and controls[0]["T"] == "subscription"
    q = p.book.quote("AAPL")
    assert q is not None and q.bid == Decimal("101.49")
    batch = p.tick(T0.timestamp() + 200, force=True)
    assert batch is not None
    assert [b.ts.minute for b in batch.bars] == [0, 1, 2]
    assert batch.bars[0].volume == Decimal("600.0") and batch.bars[0].trade_count == 60
    assert batch.quotes["AAPL"].bid == pytest.approx(101.49)
    assert batch.messages == 300


@pytest.mark.expected_log(
    r"^services\.marketdata\.pipeline: undecodable market\-data frame \S+ bytes\):",
    r"^services\.marketdata\.pipeline: malformed market\-data message \{'T': 'q', 'S': 'AAPL'\}:",
)
def test_pipeline_survives_garbage() -> None:
    p = MarketDataPipeline()
    assert p.process_frame(b"\xc1not msgpack") == 0
    assert p.process_frame(frame({"T": "q", "S": "AAPL"})) == 0
    assert p.decode_errors == 2


def test_record_and_replay_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "session.hmd"
    live = MarketDataPipeline()
    with SessionRecorder(path) as rec:
        live.taps.append(rec.write)
        for received, data in session_frames():
            live.process_frame(data, received)
    assert rec.frames == 151
    frames = list(read_frames(path))
    assert frames == [(pytest.approx(r, abs=1e-6), d) for r, d in session_frames()]

    replay = MarketDataPipeline()
    replayer = SessionReplayer(path, replay, speed=0)
    assert asyncio.run(replayer.run()) == 151
    bars = [b for batch in replayer.batches for b in batch.bars]
    assert [b.ts.minute for b in bars] == [0, 1, 2]
    assert replay.book.quote("AAPL") == live.book.quote("AAPL")
    assert replay.messages == live.messages == 300


def test_recorder_is_bounded_and_reader_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "small.hmd"
    with SessionRecorder(path, max_bytes=200) as rec:
        for received, data in session_frames():
            rec.write(data, received)
    assert rec.truncated and path.stat().st_size <= 200
    assert len(list(read_frames(path))) == rec.frames
    bad = tmp_path / "bad.hmd"
    bad.write_bytes(b"nope")
    with pytest.raises(RecordingError, match="not a Heron"):
        list(read_frames(bad))
    torn = tmp_path / "torn.hmd"
    torn.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(RecordingError, match="truncated"):
        list(read_frames(torn))
