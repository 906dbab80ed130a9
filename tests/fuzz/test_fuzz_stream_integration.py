"""The exchange's malformed-frame fault against Heron's own data connection (not alpaca-py's).

The client must survive garbage, truncated and wrongly typed frames on the same socket, count them,
and keep applying the good data that follows, without reconnecting.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.marketdata.datastream import DataConnection
from services.marketdata.pipeline import MarketDataPipeline
from tests.support.exchange import ExchangeProcess
from tests.support.polling import async_wait_for


def test_data_connection_survives_malformed_frames_and_keeps_receiving() -> None:
    with ExchangeProcess.start(extra_args=["--rate", "400"]) as ex:
        pipeline = MarketDataPipeline()
        states: list[Any] = []
        conn = DataConnection(
            "stock", ex.ws_url + "/v2/iex", ex.key_id, ex.secret, pipeline,
            lambda ch, state, why: states.append(state), data_timeout=20, backoff_min=0.2,
        )  # fmt: skip

        async def main() -> None:
            await conn.update({"quotes": ["*"], "trades": ["*"]}, {})
            task = asyncio.ensure_future(conn.run())
            try:
                await async_wait_for("pipeline.messages > 20", lambda: pipeline.messages > 20, 15)
                await asyncio.to_thread(ex.admin, "/datastream/malformed", {"count": 8})
                await async_wait_for(
                    'ex.admin("/stats")["datastream"]["malformed_sent"] >= 8',
                    lambda: ex.admin("/stats")["datastream"]["malformed_sent"] >= 8,
                    15,
                )
                after = pipeline.messages
                await async_wait_for(
                    "pipeline.messages > after + 50",
                    lambda: pipeline.messages > after + 50,
                    15,
                )
            finally:
                await conn.stop()
                await asyncio.wait_for(task, 10)

        asyncio.run(main())
    assert pipeline.decode_errors >= 1  # the garbage reached the decoder and was counted
    assert conn.connects == 1 and conn.disconnects == 0, (conn.connects, conn.disconnects, conn.last_error)
