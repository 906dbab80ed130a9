"""A headless run whose shutdown failed exits non-zero; a stream library's expected reconnect error
is one log line, an unexpected one keeps its traceback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import websockets

from app.context import Services
from app.headless import headless_exit_reasons
from app.lifecycle import CLOSE_STREAMS, Lifecycle
from app.logging_setup import LogHub, SecretRedactor, setup_logging
from services.domain.enums import Mode


def _shutdown(fail: bool) -> object:
    lifecycle = Lifecycle(default_timeout=0.05)

    async def hangs() -> None:
        await asyncio.Event().wait()  # a frozen broker never answers the close

    async def closes() -> None:
        return None

    lifecycle.add_step(CLOSE_STREAMS, "streams", hangs if fail else closes)
    return asyncio.run(lifecycle.shutdown("quit"))


@pytest.mark.expected_log(r"^heron\.lifecycle: shutdown step 'streams' \(close streams\) timed out")
def test_a_shutdown_with_errors_makes_a_headless_run_exit_non_zero() -> None:
    services = Services(mode=Mode.LOCAL)
    services.trading_was_active = True
    assert headless_exit_reasons(services, None, _shutdown(fail=False)) == []  # type: ignore[arg-type]
    reasons = headless_exit_reasons(services, None, _shutdown(fail=True))  # type: ignore[arg-type]
    assert len(reasons) == 1
    assert "shutdown finished with errors" in reasons[0]
    assert "close streams/streams: timed out" in reasons[0]


def test_expected_stream_reconnect_errors_are_one_line_and_others_keep_their_traceback(
    tmp_path: Path,
) -> None:
    handle = setup_logging(redactor=SecretRedactor(), hub=LogHub(), log_dir=tmp_path, console_level=None)
    stream = logging.getLogger("alpaca.trading.stream")
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
        except ConnectionRefusedError as e:
            stream.exception("error during websocket communication: %s", e)
        try:
            raise websockets.exceptions.ConnectionClosedError(None, None)
        except websockets.exceptions.ConnectionClosedError as e:
            logging.getLogger("alpaca.data.live.websocket").exception(
                "error during websocket communication: %s", e
            )
        try:
            raise ValueError("a bug in a message handler")
        except ValueError as e:
            stream.exception("error during websocket communication: %s", e)
    finally:
        handle.close()
    text = (tmp_path / "heron.log").read_text()
    refused, closed, bug = text.split("error during websocket communication")[1:]
    assert "Traceback" not in refused and "Traceback" not in closed
    said = [line for line in text.splitlines() if "error during websocket communication" in line]
    assert [" WARNING " in line for line in said] == [True, True, False]
    assert "ConnectionRefusedError" in said[0]
    assert refused.count("\n") == 1 and closed.count("\n") == 1  # one line each
    assert "Traceback" in bug and "ValueError: a bug in a message handler" in bug
