"""Absurd numbers are refused by every number parser, with its own typed error.

An absurd number is one whose magnitude is 1e16 or more or that has more than 40 digits after the
point (``1e-999999999`` in a strategy quantity once cost 5 GB of memory and a 1 GB state file);
Alpaca itself takes at most 9 decimals for qty and notional (Alpaca support, "How can I pass a
fractional order?"). Each parser must refuse it before doing anything costly: the properties below
would run out of memory or time if one did not.
"""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import strategies as st

from app.script import ScriptError, load_script
from app.settings import SettingsError, from_dict
from services.domain.money import InvalidNumberError, to_decimal
from services.risk.limits import RiskLimits, RiskLimitsError
from services.strategies.api import Param, ParamError
from tests.fuzz.budget import fuzz_pair

mantissa = st.from_regex(r"\A[+-]?[1-9][0-9]{0,8}(\.[0-9]{0,8})?\Z")
big_exponent = st.one_of(st.integers(16, 10**12), st.integers(-(10**12), -50))
absurd_text = st.one_of(
    st.builds(lambda m, e, c: f"{m}{c}{e:+d}", mantissa, big_exponent, st.sampled_from("eE")),
    st.builds(lambda n: "1" * n, st.integers(101, 100_000)),
    st.builds(lambda n: "0." + "0" * n + "1", st.integers(41, 100_000)),
)


def prop_absurd_numbers_are_refused(text: str) -> None:
    try:
        to_decimal(text, field="qty")
        raise AssertionError(f"to_decimal accepted {text[:40]!r}")
    except InvalidNumberError as exc:
        assert "qty" in str(exc)
    for kind in (Decimal, float):
        try:
            Param("qty", kind, kind(1)).coerce(text)
            raise AssertionError(f"{kind.__name__} parameter accepted {text[:40]!r}")
        except ParamError as exc:
            assert "qty" in str(exc)
    try:
        RiskLimits.from_strings({"max_order_notional": text})
        raise AssertionError(f"risk limits accepted {text[:40]!r}")
    except RiskLimitsError as exc:
        assert "max_order_notional" in str(exc)
    try:
        from_dict({"risk": {"max_order_qty": text}})
        raise AssertionError(f"settings accepted {text[:40]!r}")
    except SettingsError as exc:
        assert "max_order_qty" in str(exc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.json"
        path.write_text(json.dumps([{"symbol": "AAPL", "side": "buy", "qty": text}]), encoding="utf-8")
        try:
            load_script(path)
            raise AssertionError(f"order script accepted {text[:40]!r}")
        except ScriptError as exc:
            assert "qty" in str(exc)


test_absurd_numbers_are_refused, test_absurd_numbers_are_refused_deep = fuzz_pair(absurd_text, examples=60)(
    prop_absurd_numbers_are_refused
)


def prop_absurd_whole_numbers_are_refused(n: int) -> None:
    try:
        Param("n", int, 1).coerce(str(n))
        raise AssertionError(f"int parameter accepted {n}")
    except ParamError as exc:
        assert "'n'" in str(exc)
    try:
        RiskLimits.from_strings({"max_open_orders": str(n)})
        raise AssertionError(f"risk limits accepted {n}")
    except RiskLimitsError as exc:
        assert "max_open_orders" in str(exc)


test_absurd_whole_numbers_are_refused, test_absurd_whole_numbers_are_refused_deep = fuzz_pair(
    st.integers(10**16, 10**4000)
)(prop_absurd_whole_numbers_are_refused)
