"""The sweep SPEC: what is accepted, how values are typed, and that every refusal names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import Timeframe
from services.lab.model import FoldKind, SearchKind, point_key
from services.lab.spec import MAX_POINTS, SpecError, expand, parse_spec, spec_to_json
from tests.unit.lab.support import NOW, registry, spec_data


def parse(data: dict[str, Any]) -> Any:
    return parse_spec(data, registry(), now=NOW)


def test_the_issue_form_is_accepted_with_days_of_history() -> None:
    spec = parse(
        {"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 20, "timeframe": "1Min",
         "search": "grid", "space": {"fast": [2, 3, 5], "slow": [10, 20]}}
    )  # fmt: skip
    assert spec.strategy == "sma_crossover"
    assert spec.symbols == ("AAPL",)
    assert spec.end == NOW and spec.start == NOW - timedelta(days=20)
    assert spec.timeframe is Timeframe.MIN_1 and spec.search is SearchKind.GRID
    assert spec.space == {"fast": (2, 3, 5), "slow": (10, 20)}
    assert spec.metric == "sharpe"


def test_values_are_typed_by_the_strategy_params_and_ranges_expand() -> None:
    spec = parse(
        spec_data(
            space={"fast": {"from": 2, "to": 10, "step": 4}, "slow": ["20", 30, 30]},
            fixed={"qty": "2.5", "allow_short": "true"},
            start="2024-01-02",
            end="2024-03-01T00:00:00+00:00",
            metric="max_drawdown",
            commission_per_share="0.005",
        )
    )
    assert spec.space == {"fast": (2, 6, 10), "slow": (20, 30)}  # typed ints, duplicates dropped
    assert spec.fixed == {"qty": Decimal("2.5"), "allow_short": True}
    assert spec.start == datetime(2024, 1, 2, tzinfo=UTC)
    assert spec.commission_per_share == "0.005"


def test_the_json_form_reads_back_to_the_same_spec() -> None:
    spec = parse(
        spec_data(
            search="random", points=4, seed=9, fixed={"qty": "3"},
            walk_forward={"kind": "anchored", "folds": 2, "in_sample_days": 30, "out_of_sample_days": 10},
        )
    )  # fmt: skip
    assert parse(spec_to_json(spec)) == spec
    assert spec.walk_forward is not None and spec.walk_forward.kind is FoldKind.ANCHORED


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": "nope"}, "strategy"),
        ({"strategy": None}, "strategy"),
        ({"symbols": []}, "symbols"),
        ({"symbols": ["not a symbol!"]}, "symbols"),
        ({"timeframe": "2Min"}, "timeframe"),
        ({"search": "genetic"}, "search"),
        ({"space": {}}, "space"),
        ({"space": {"fast": []}}, "space.fast"),
        ({"space": {"fastest": [1]}}, "space.fastest"),
        ({"space": {"fast": ["x"]}}, "space.fast"),
        ({"space": {"fast": [0]}}, "space.fast"),  # below the parameter's minimum
        ({"space": {"fast": {"from": 5, "to": 1, "step": 1}}}, "space.fast"),
        ({"space": {"fast": {"from": 1, "to": 5, "step": 0.5}}}, "space.fast"),
        ({"space": {"symbols": ["AAPL"]}}, "space.symbols"),
        ({"space": {"fast": list(range(1, 400)), "slow": list(range(2, 400))}}, "space"),
        ({"fixed": {"fast": 3}}, "fixed.fast"),
        ({"fixed": {"bogus": 3}}, "fixed.bogus"),
        ({"metric": "profit"}, "metric"),
        ({"points": 5}, "points"),  # a grid runs the whole grid
        ({"search": "random", "points": 0}, "points"),
        ({"search": "random", "points": MAX_POINTS + 1}, "points"),
        ({"seed": -1}, "seed"),
        ({"days": 5}, "start"),  # days and start together
        ({"start": "yesterday"}, "start"),
        ({"end": "2023-01-01"}, "end"),
        ({"initial_cash": "0"}, "initial_cash"),
        ({"slippage_bps": "-1"}, "slippage_bps"),
        ({"colour": "blue"}, "colour"),
        ({"costs": {"fees": 1}}, "costs.fees"),
        ({"costs": {"initial_cash": 5}, "initial_cash": 5}, "costs.initial_cash"),
        ({"costs": [1]}, "costs"),
        ({"walk_forward": {"kind": "rolling", "folds": 2}}, "walk_forward.in_sample_days"),
        (
            {"walk_forward": {"kind": "sliding", "folds": 2, "in_sample_days": 5, "out_of_sample_days": 5}},
            "walk_forward.kind",
        ),
        (
            {
                "walk_forward": {
                    "kind": "rolling",
                    "folds": 50,
                    "in_sample_days": 30,
                    "out_of_sample_days": 10,
                }
            },
            "walk_forward.folds",
        ),
    ],
)
def test_every_refusal_names_its_field(change: dict[str, Any], field: str) -> None:
    data = spec_data(**change)
    with pytest.raises(SpecError) as caught:
        parse(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_costs_may_be_grouped() -> None:
    spec = parse(spec_data(costs={"initial_cash": 25000, "commission_per_share": "0.005", "slippage_bps": 2}))
    assert (spec.initial_cash, spec.commission_per_share, spec.slippage_bps) == ("25000", "0.005", "2")


def test_missing_dates_are_refused_naming_days() -> None:
    data = spec_data()
    del data["start"], data["end"]
    with pytest.raises(SpecError) as caught:
        parse(data)
    assert caught.value.field == "days"


def test_expand_refuses_invalid_combinations_before_any_worker() -> None:
    spec = parse(spec_data(space={"fast": [2, 10, 20], "slow": [10, 20]}))
    valid, refused = expand(spec, registry())
    assert valid == [{"fast": 2, "slow": 10}, {"fast": 2, "slow": 20}, {"fast": 10, "slow": 20}]
    assert [p for p, _ in refused] == [
        {"fast": 10, "slow": 10},
        {"fast": 20, "slow": 10},
        {"fast": 20, "slow": 20},
    ]
    assert all("must be smaller than slow" in reason for _, reason in refused)


def test_random_search_is_a_seeded_sample_without_repeats() -> None:
    data = spec_data(
        search="random", points=10, space={"fast": list(range(1, 30)), "slow": list(range(2, 40))}
    )
    first, _ = expand(parse(data), registry())
    again, _ = expand(parse(data), registry())
    other, _ = expand(parse({**data, "seed": 1}), registry())
    assert first == again and first != other
    assert len({point_key(p) for p in first}) == 10
    assert all(p["fast"] < p["slow"] for p in first)


def test_an_unknown_parameter_lists_only_the_parameters_a_space_takes() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_data(space={"fast": [2], "slow": [10], "bogus": [1]}), registry(), now=NOW)
    assert (
        str(caught.value)
        == "space.bogus: unknown parameter; this strategy's parameters are allow_short, fast, qty, slow"
    )
    # qty is listed because it can be swept; symbols come from the spec's own field
    assert parse_spec(spec_data(space={"fast": [2], "slow": [10], "qty": [1, 2]}), registry(), now=NOW)


def test_folds_that_do_not_fit_name_the_range_in_dates() -> None:
    data = spec_data(start=None, end=None, days=3)
    del data["start"], data["end"]
    data["walk_forward"] = {"kind": "rolling", "folds": 5, "in_sample_days": 5, "out_of_sample_days": 2}
    with pytest.raises(SpecError) as caught:
        parse_spec(data, registry(), now=NOW + timedelta(microseconds=123456))
    text = str(caught.value)
    assert text.startswith("walk_forward.folds: the range 2026-05-29 to 2026-06-01 holds ")
    assert "123456" not in text and "T" not in text.split(" holds ")[0]


def test_a_range_that_ends_now_stops_before_the_bar_still_forming() -> None:
    """A sweep over the last N days and the same point replayed a minute later must see the same
    bars: the bar still forming at "now" (its close can still move) is left out (ranges are
    half-open), for every timeframe."""
    from datetime import UTC, datetime

    from services.lab.spec import parse_spec
    from services.strategies.builtin import builtin_registry

    now = datetime(2026, 12, 5, 14, 43, 27, 500_000, tzinfo=UTC)
    base = {"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 3, "space": {"fast": [2], "slow": [10]}}
    ends = {
        "1Min": datetime(2026, 12, 5, 14, 43, tzinfo=UTC),
        "5Min": datetime(2026, 12, 5, 14, 40, tzinfo=UTC),
        "15Min": datetime(2026, 12, 5, 14, 30, tzinfo=UTC),
        "1Hour": datetime(2026, 12, 5, 14, 0, tzinfo=UTC),
        "1Day": datetime(2026, 12, 5, 0, 0, tzinfo=UTC),
    }
    for timeframe, end in ends.items():
        spec = parse_spec({**base, "timeframe": timeframe}, builtin_registry(), now=now)
        assert spec.end == end, timeframe
