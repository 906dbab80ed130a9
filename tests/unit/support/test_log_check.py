"""tests/conftest.py fails a test on an undeclared WARNING from Heron's loggers, and on any warning."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

SUITE = r"""
import logging
import warnings

import pytest


def test_an_undeclared_warning_fails() -> None:
    logging.getLogger("services.orders.engine").warning("order refused")


def test_an_error_in_tear_down_fails(log_in_teardown: None) -> None:
    pass


@pytest.mark.expected_log(r"^services\.orders\.engine: order refused$")
def test_a_declared_warning_passes() -> None:
    logging.getLogger("services.orders.engine").warning("order refused")


@pytest.mark.expected_log(r"^services\.orders\.engine: something else")
def test_a_warning_the_patterns_do_not_name_fails() -> None:
    logging.getLogger("services.orders.engine").warning("order refused")


@pytest.mark.expected_log
def test_a_bare_marker_accepts_any_warning() -> None:
    logging.getLogger("heron.app").error("anything")


def test_info_and_other_libraries_pass() -> None:
    logging.getLogger("services.orders.engine").info("fine")
    logging.getLogger("urllib3.connectionpool").warning("not Heron's")


def test_a_python_warning_is_an_error() -> None:
    warnings.warn("deprecated", DeprecationWarning, stacklevel=1)


@pytest.fixture
def log_in_teardown():
    yield
    logging.getLogger("widgets.blotter").error("failed while closing")
"""


def test_undeclared_warnings_fail_and_declared_ones_pass(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:pytestqt", "-rA")
    result.assert_outcomes(passed=4, failed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "ERROR test_suite.py::test_an_error_in_tear_down_fails*",
            "FAILED test_suite.py::test_an_undeclared_warning_fails*",
            "FAILED test_suite.py::test_a_warning_the_patterns_do_not_name_fails*",
            "FAILED test_suite.py::test_a_python_warning_is_an_error*",
        ]
    )
    out = result.stdout.str()
    assert "unexpected log record(s) at WARNING or above during the test" in out
    assert "unexpected log record(s) at WARNING or above during tear-down" in out
    assert "WARNING services.orders.engine: order refused" in out
    assert "ERROR widgets.blotter: failed while closing" in out
