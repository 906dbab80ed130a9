"""Record a session's raw market-data frames and replay them through the same pipeline.

File format: the 8-byte magic ``HERONMD1`` then records of ``<u32 length><i64 receive time in ns>``
followed by ``length`` bytes of the frame exactly as received (a msgpack array). The file is
bounded: once ``max_bytes`` would be exceeded, recording stops and ``truncated`` is set (the
frames kept are a clean prefix, never a torn record).
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from services.marketdata.pipeline import MarketDataBatch, MarketDataPipeline

MAGIC = b"HERONMD1"
_HEAD = struct.Struct("<Iq")


class RecordingError(ValueError):
    """The file is not a Heron market-data recording, or it is damaged."""


class SessionRecorder:
    """Append frames to a file; usable as a pipeline tap (``pipeline.taps.append(rec.write)``).

    Thread-safe (a lock around each record), so it may be fed from the market-data thread.
    """

    def __init__(self, path: Path, *, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fh: BinaryIO | None = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._fh.write(MAGIC)
        self.bytes_written = len(MAGIC)
        self.frames = 0
        self.truncated = False
        self._lock = threading.Lock()

    def write(self, frame: bytes, received: float) -> None:
        with self._lock:
            if self._fh is None or self.truncated:
                return
            size = _HEAD.size + len(frame)
            if self.bytes_written + size > self.max_bytes:
                self.truncated = True
                return
            self._fh.write(_HEAD.pack(len(frame), int(received * 1e9)))
            self._fh.write(frame)
            self.bytes_written += size
            self.frames += 1

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames(path: Path) -> Iterator[tuple[float, bytes]]:
    """Yield ``(receive time in seconds, frame)``; raise RecordingError on a bad or torn file."""
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise RecordingError(f"{path} is not a Heron market-data recording")
        while True:
            head = fh.read(_HEAD.size)
            if not head:
                return
            if len(head) < _HEAD.size:
                raise RecordingError(f"{path}: truncated record header")
            length, ns = _HEAD.unpack(head)
            frame = fh.read(length)
            if len(frame) < length:
                raise RecordingError(f"{path}: truncated frame ({len(frame)} of {length} bytes)")
            yield ns / 1e9, frame


class SessionReplayer:
    """Feed a recording through a pipeline at ``speed``x (0 = as fast as possible).

    The pipeline's clock is the recording's: candles close and batches are cut as they would have
    been live. Each batch goes to ``on_batch``. Cancel the coroutine to stop a replay.
    """

    def __init__(self, path: Path, pipeline: MarketDataPipeline, *, speed: float = 0.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        self.path = path
        self.pipeline = pipeline
        self.speed = speed
        self.frames = 0
        self.batches: list[MarketDataBatch] = []

    async def run(self, on_batch: object = None) -> int:
        """Replay the whole file; returns frames replayed. Batches also kept in ``batches``."""
        start_wall = time.monotonic()
        first: float | None = None
        last = 0.0
        for received, frame in read_frames(self.path):
            if first is None:
                first = received
            if self.speed > 0:
                due = (received - first) / self.speed - (time.monotonic() - start_wall)
                if due > 0:
                    await asyncio.sleep(due)
            elif self.frames % 256 == 0:
                await asyncio.sleep(0)  # stay cancellable and let the loop breathe
            self.pipeline.process_frame(frame, received)
            self._tick(received, on_batch)
            self.frames += 1
            last = received
        self._tick(last + 3600, on_batch, force=True)  # close every bar at the end
        return self.frames

    def _tick(self, now: float, on_batch: object, *, force: bool = False) -> None:
        batch = self.pipeline.tick(now, force=force)
        if batch is not None:
            self.batches.append(batch)
            if callable(on_batch):
                on_batch(batch)
