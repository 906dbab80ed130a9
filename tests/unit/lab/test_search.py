"""Bayesian search: Optuna ask/tell driven here, de-duplicated, seeded, resumable from stored points."""

from __future__ import annotations

from typing import Any

from services.lab.model import PointResult, point_key
from services.lab.search import OptunaSource
from services.lab.spec import expand, parse_spec
from tests.unit.lab.support import NOW, Objective, registry, spec_data


def objective(point: dict[str, Any]) -> float:
    if "x" not in point:
        return float(point["slow"] - point["fast"])
    return 100.0 - (point["x"] - 7) ** 2 - (point["y"] - 3) ** 2


def result(point: dict[str, Any]) -> PointResult:
    return PointResult(
        key=point_key(point),
        params=dict(point),
        metrics={"total_return": objective(point), "sharpe": objective(point)},
    )


def bayes_spec(points: int, seed: int = 4) -> Any:
    data = spec_data(
        strategy="objective", search="bayes", points=points, seed=seed, metric="total_return",
        space={"x": {"from": 0, "to": 10, "step": 1}, "y": {"from": 0, "to": 10, "step": 1}},
    )  # fmt: skip
    return parse_spec(data, registry(), now=NOW)


def drive(source: OptunaSource, limit: int = 10_000) -> list[dict[str, Any]]:
    asked: list[dict[str, Any]] = []
    while len(asked) < limit and (point := source.next()) is not None:
        asked.append(point)
        source.done(point_key(point), result(point))
    return asked


def test_tpe_finds_the_optimum_of_a_known_objective_without_repeating_a_point() -> None:
    spec = bayes_spec(points=45)
    valid, refused = expand(spec, registry())
    assert len(valid) == 120 and [p for p, _ in refused] == [{"x": 0, "y": 0}]
    source = OptunaSource(spec, Objective, valid, 45)
    asked = drive(source)
    assert len(asked) == 45  # the budget: distinct points computed
    assert len({point_key(p) for p in asked}) == 45  # a repeated ask never reaches a worker
    assert {"x": 0, "y": 0} not in asked  # the strategy refuses it: never sent
    assert max(asked, key=objective) == {"x": 7, "y": 3}
    assert source.study.best_trial.params == {"x": 7, "y": 3}  # indices of the sorted values


def test_the_same_seed_asks_the_same_points_and_a_resume_continues_from_stored_ones() -> None:
    spec = bayes_spec(points=20)
    valid, _ = expand(spec, registry())
    first = drive(OptunaSource(spec, Objective, valid, 20))
    assert drive(OptunaSource(spec, Objective, valid, 20)) == first
    stored = [result(p) for p in first[:12]]
    resumed = OptunaSource(spec, Objective, valid, 20, stored)
    rest = drive(resumed)
    assert len(rest) == 8  # the budget counts the stored points
    assert not {point_key(p) for p in rest} & {r.key for r in stored}


def test_a_budget_over_the_space_stops_when_every_point_is_done() -> None:
    data = spec_data(search="bayes", points=50, space={"fast": [2, 3], "slow": [5, 6, 7]})
    spec = parse_spec(data, registry(), now=NOW)
    valid, _ = expand(spec, registry())
    from services.strategies.builtin import SmaCrossover

    source = OptunaSource(spec, SmaCrossover, valid, len(valid))
    asked = drive(source, limit=100)
    assert sorted((p["fast"], p["slow"]) for p in asked) == [(2, 5), (2, 6), (2, 7), (3, 5), (3, 6), (3, 7)]
