"""Session-wide test setup. Runs before pytest-qt creates its QApplication.

Nothing here imports Qt: the services tests also run in an environment without PySide6
(``.ci/run``, "services without Qt"), where this file must still load.

Unexpected log lines fail a test. A record at WARNING or above from one of Heron's loggers
(``heron.*``, ``app.*``, ``services.*``, ``widgets.*``, ``main``) fails the test that caused it,
unless the test declares it expected::

    @pytest.mark.expected_log(r"no price for BTC/USD", r"^services\\.orders\\.engine: ")
    def test_refuses_an_unpriced_order(...): ...

Each pattern is a regular expression searched in ``"<logger name>: <message>"``; a bare
``@pytest.mark.expected_log`` (no pattern) accepts any warning, for tests whose point is the
warning storm itself. The check covers set-up, the test and tear-down.
"""

from __future__ import annotations

import gc
import logging
import os
import re
from collections.abc import Generator

import pytest

# Tests never need a real display; without this Qt aborts the whole process when DISPLAY is unset.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Keep libdbus from auto-launching a session bus that outlives the tests.
os.environ.setdefault("DBUS_SESSION_BUS_ADDRESS", "disabled:")

HERON_LOGGERS = ("heron", "app", "services", "widgets", "main")

pytest_plugins = ("pytester",)  # tests/unit/support/test_log_check.py runs a small suite of its own


def pytest_addoption(parser: pytest.Parser) -> None:
    # Without pytest-qt (the services-without-Qt job) its ini key would fail --strict-config.
    try:
        import pytestqt  # noqa: F401
    except ImportError:
        parser.addini("qt_api", "pytest-qt's binding (unused here: pytest-qt is not installed)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expected_log(*patterns): WARNING+ records from Heron's loggers this test expects "
        "(regular expressions searched in '<logger>: <message>'; none = any)",
    )


@pytest.fixture
def collect_garbage_after() -> Generator[None, None, None]:
    """Collect garbage after the test, so what it leaked is reported (or ignored) with it."""
    yield
    gc.collect()


def is_heron_logger(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in HERON_LOGGERS)


class UnexpectedLogRecorder(logging.Handler):
    """Keeps every WARNING+ record from Heron's loggers that the running test did not declare."""

    def __init__(self, patterns: list[re.Pattern[str]] | None) -> None:
        super().__init__(logging.WARNING)
        self.patterns = patterns  # None: any record is expected
        self.unexpected: list[logging.LogRecord] = []

    def expected(self, record: logging.LogRecord) -> bool:
        if self.patterns is None:
            return True
        line = f"{record.name}: {record.getMessage()}"
        return any(p.search(line) for p in self.patterns)

    def emit(self, record: logging.LogRecord) -> None:
        if is_heron_logger(record.name) and not self.expected(record):
            self.unexpected.append(record)

    def take(self) -> list[str]:
        lines = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.unexpected]
        self.unexpected.clear()
        return lines


def _declared_patterns(item: pytest.Item) -> list[re.Pattern[str]] | None:
    markers = list(item.iter_markers("expected_log"))
    if not markers:
        return []
    patterns = [p for m in markers for p in m.args]
    return [re.compile(p) for p in patterns] if patterns else None


_RECORDER = pytest.StashKey[UnexpectedLogRecorder]()


def _fail_on(item: pytest.Item, when: str) -> None:
    recorder = item.stash.get(_RECORDER, None)
    lines = recorder.take() if recorder is not None else []
    if lines:
        shown = "\n  ".join(lines[:20]) + ("\n  …" if len(lines) > 20 else "")
        pytest.fail(
            f"unexpected log record(s) at WARNING or above during {when} "
            f"(declare them with @pytest.mark.expected_log(pattern)):\n  {shown}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    recorder = UnexpectedLogRecorder(_declared_patterns(item))
    item.stash[_RECORDER] = recorder
    logging.getLogger().addHandler(recorder)
    yield
    _fail_on(item, "set-up")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield
    _fail_on(item, "the test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        yield
    finally:
        recorder = item.stash.get(_RECORDER, None)
        if recorder is not None:
            logging.getLogger().removeHandler(recorder)
    _fail_on(item, "tear-down")
