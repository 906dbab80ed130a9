"""Market-data frames: arbitrary bytes, truncated msgpack and wrongly typed messages.

Contract (services/marketdata/pipeline.py): a bad frame or message is counted and logged, never
raised; the good messages in the same or later frames are all applied (nothing lost).
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack
from hypothesis import strategies as st

from services.marketdata.pipeline import MarketDataPipeline
from tests.fuzz.budget import fuzz_pair

T0 = 1_772_463_600_000_000_000  # ns
GOOD_QUOTE = {"T": "q", "S": "AAPL", "bp": 187.1, "bs": 3, "ap": 187.2, "as": 4, "t": T0}
GOOD_TRADE = {"T": "t", "S": "AAPL", "p": 187.15, "s": 10, "t": T0 + 1}
GOOD_BAR = {
    "T": "b",
    "S": "AAPL",
    "o": 1.0,
    "h": 2.0,
    "l": 0.5,
    "c": 1.5,
    "v": 100,
    "n": 3,
    "vw": 1.2,
    "t": T0,
}

scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.binary(max_size=6),
)  # fmt: skip


@st.composite
def mangled(draw: st.DrawFn) -> Any:
    """A good message with fields replaced, dropped or added, or something that is not a message."""
    base = dict(draw(st.sampled_from([GOOD_QUOTE, GOOD_TRADE, GOOD_BAR])))
    for key in draw(st.lists(st.sampled_from(list(base)), max_size=3, unique=True)):
        if draw(st.booleans()):
            base[key] = draw(
                st.one_of(
                    scalar,
                    st.lists(scalar, max_size=2),
                    st.dictionaries(st.text(max_size=2), scalar, max_size=2),
                )
            )
        else:
            del base[key]
    return draw(st.one_of(st.just(base), scalar, st.lists(scalar, max_size=3)))


def _frame(messages: list[Any]) -> bytes:
    return msgpack.packb(messages, default=repr)


frames = st.one_of(
    st.binary(max_size=120),
    st.lists(mangled(), max_size=5).map(_frame),
    st.tuples(st.lists(mangled(), min_size=1, max_size=3).map(_frame), st.floats(0, 1)).map(
        lambda fb: fb[0][: int(len(fb[0]) * fb[1])]  # truncated
    ),
    mangled().map(lambda m: msgpack.packb(m, default=repr)),  # a single message, not an array
    # reserved byte, a huge array header, deep nesting
    st.just(b"\xc1"), st.just(b"\xdd\xff\xff\xff\xff"), st.just(b"\x91" * 600 + b"\xc0"),
)  # fmt: skip


def prop_pipeline_survives_any_frame(bad: list[bytes]) -> None:
    logging.getLogger("services.marketdata.pipeline").setLevel(logging.CRITICAL)
    pipe = MarketDataPipeline(wall_clock=lambda: T0 / 1e9)
    for frame in bad:
        n = pipe.process_frame(frame, received=T0 / 1e9)
        assert isinstance(n, int) and n >= 0
        pipe.tick(T0 / 1e9, force=True)
    # The stream goes on: a good frame after the garbage is applied in full.
    before = pipe.messages
    good = {**GOOD_QUOTE, "S": "ZZZZ", "t": T0 + 5}
    assert (
        pipe.process_frame(_frame([good, {**GOOD_TRADE, "S": "ZZZZ", "t": T0 + 6}]), received=T0 / 1e9) == 2
    )
    assert pipe.messages == before + 2
    batch = pipe.tick(T0 / 1e9 + 1, force=True)
    assert batch is not None and "ZZZZ" in batch.quotes


test_pipeline_survives_any_frame, test_pipeline_survives_any_frame_deep = fuzz_pair(
    st.lists(frames, min_size=1, max_size=4), examples=200
)(prop_pipeline_survives_any_frame)


def test_good_messages_in_a_frame_with_bad_ones_are_all_applied() -> None:
    pipe = MarketDataPipeline(wall_clock=lambda: T0 / 1e9)
    frame = _frame([GOOD_QUOTE, {"T": "q", "S": "AAPL"}, "junk", 7, GOOD_TRADE, {**GOOD_BAR, "o": "x"}, None])
    assert pipe.process_frame(frame, received=T0 / 1e9) == 2
    assert pipe.decode_errors >= 3


def test_regression_bool_trade_price_is_refused_and_ticks_keep_working() -> None:
    # Found by the fuzzer: {"p": false} reached the candle builder and every later tick() raised.
    pipe = MarketDataPipeline(wall_clock=lambda: T0 / 1e9)
    assert pipe.process_frame(_frame([{**GOOD_TRADE, "p": False}, {**GOOD_QUOTE, "bp": "187"}])) == 0
    assert pipe.decode_errors == 2
    pipe.tick(T0 / 1e9 + 120, force=True)  # no exception


def test_regression_bar_with_null_price_is_counted_not_raised() -> None:
    # Found by the fuzzer: decimal.InvalidOperation escaped process_messages.
    pipe = MarketDataPipeline(wall_clock=lambda: T0 / 1e9)
    assert pipe.process_frame(_frame([{**GOOD_BAR, "o": None}, {**GOOD_BAR, "t": 2**70}, GOOD_QUOTE])) == 1
    assert pipe.decode_errors == 2
