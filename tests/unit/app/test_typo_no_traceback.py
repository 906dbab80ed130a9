"""A mistyped value never produces a traceback in the log: it is one line saying what was refused.
A real bug (any other exception) keeps its traceback, so it can be found."""

from __future__ import annotations

import asyncio
import logging
import sys
from decimal import Decimal, InvalidOperation

import pytest

from app.errors import ExceptionHooks
from services.domain.money import to_decimal
from services.domain.symbols import normalize_symbol
from tests.widgets import trading_rig
from widgets.tasks import run_async

qloop = trading_rig.qloop


def raised(fn) -> tuple:  # type: ignore[no-untyped-def, type-arg]
    try:
        fn()
    except Exception:
        return sys.exc_info()
    raise AssertionError("nothing was raised")


@pytest.mark.expected_log(r"^heron\.errors: refused: ")
@pytest.mark.parametrize(
    ("typo", "said"),
    [
        (lambda: to_decimal("12,5x", field="quantity"), "refused: quantity is not a number: '12,5x'"),
        (lambda: normalize_symbol("AA PL!"), "refused: not a valid symbol: 'AA PL!'"),
        (lambda: Decimal("1.2.3"), "refused: a value typed is not a number"),
    ],
)
def test_a_typo_reaching_a_slot_is_one_line(typo, said: str, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    notes: list[object] = []
    hooks = ExceptionHooks(notify=notes.append)
    with caplog.at_level(logging.DEBUG, logger="heron.errors"):
        hooks.sys_hook(*raised(typo))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [said]
    assert all(r.exc_info is None for r in errors)  # the trace only at DEBUG, for debugging
    assert len(notes) == 1


@pytest.mark.expected_log(r"^heron\.errors: unhandled exception")
def test_a_bug_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    hooks = ExceptionHooks(notify=lambda _e: None)
    with caplog.at_level(logging.ERROR, logger="heron.errors"):
        hooks.sys_hook(*raised(lambda: {}["missing"]))
    assert caplog.records[-1].exc_info is not None


@pytest.mark.expected_log(r"^heron\.widgets: refused: quantity is not a number")
def test_a_typo_in_a_background_action_is_one_line(qloop, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    async def close_typed() -> None:
        to_decimal("1O", field="quantity")  # the letter O

    got: list[BaseException | None] = []

    async def main() -> None:
        await asyncio.wait([run_async(close_typed(), lambda _r, e: got.append(e))])
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="heron.widgets"):
        qloop.run_until_complete(main())
    assert isinstance(got[0], ValueError)
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("refused: quantity is not a number: '1O'", None)
    ]
    assert not isinstance(got[0], InvalidOperation)
