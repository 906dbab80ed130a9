"""Every reason a headless run exits non-zero is one line, whatever the cause's text held."""

from __future__ import annotations

from app.context import Services
from app.headless import headless_exit_reasons
from services.domain.enums import Mode


def test_a_multi_line_build_failure_is_one_line() -> None:
    reasons = headless_exit_reasons(Services(mode=Mode.LOCAL), "building failed: a\n  b\tc")
    assert reasons == ["start-up failed: building failed: a b c"]
