"""The lab's parameter fields: one value, a list or a range, typed and checked by the strategy's Param."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.strategies.api import Param
from widgets.lab.space import MAX_VALUES, SpaceError, grid_size, json_value, parse_field

FAST = Param("fast", int, 10, "fast SMA", minimum=1, maximum=100_000)
K = Param("k", float, 2.0, "band width", minimum=0.1, maximum=10.0)
QTY = Param("qty", Decimal, Decimal(1), "size", minimum=Decimal(0))
SHORT = Param("allow_short", bool, False, "short")
SIDE = Param("side", str, "long", "setups", choices=("long", "short", "both"))


def test_a_list_a_range_and_a_stepped_range() -> None:
    assert parse_field(FAST, "2, 3, 5").values == (2, 3, 5)
    assert parse_field(FAST, "2..6").values == (2, 3, 4, 5, 6)
    assert parse_field(FAST, " 2 .. 20 step 6 ").values == (2, 8, 14, 20)
    assert parse_field(K, "0.5..1.5 step 0.25").values == (0.5, 0.75, 1.0, 1.25, 1.5)
    assert parse_field(QTY, "1..2 step 0.5").values == (Decimal(1), Decimal("1.5"), Decimal(2))
    assert parse_field(SHORT, "true, false").values == (True, False)
    assert parse_field(SIDE, "long, both").values == ("long", "both")


def test_one_value_or_none_is_a_fixed_parameter() -> None:
    assert not parse_field(FAST, "7").swept and parse_field(FAST, "7").values == (7,)
    assert parse_field(FAST, "").values == (10,)  # empty: the default
    assert parse_field(FAST, "3, 3, 3").values == (3,)  # duplicates dropped


@pytest.mark.parametrize(
    ("param", "text", "words"),
    [
        (FAST, "2..x", "'x' is not a number"),
        (FAST, "20..2", "runs backwards"),
        (FAST, "2..10 step 0", "step must be positive"),
        (FAST, "2.5..4", "not a whole number"),
        (FAST, "0, 2", ">= 1"),  # the Param's own bound
        (FAST, "2,,3", "an empty value"),
        (FAST, f"1..{MAX_VALUES + 1}", "at most"),
        (SHORT, "true..false", "expected true/false"),
        (SIDE, "long, sideways", "must be one of"),
    ],
)
def test_a_field_that_cannot_be_read_names_the_parameter(param: Param, text: str, words: str) -> None:
    with pytest.raises(SpaceError) as caught:
        parse_field(param, text)
    assert caught.value.name == param.name
    assert str(caught.value).startswith(f"{param.name}: ") and words in str(caught.value)


def test_json_values_and_grid_size() -> None:
    assert (
        json_value(Decimal("1.50")) == "1.50" and json_value(3) == 3 and json_value(("A", "B")) == ["A", "B"]
    )
    assert grid_size([parse_field(FAST, "2..10"), parse_field(K, "1, 2, 3")]) == 27
    assert grid_size([]) == 1
