"""Where a sweep's next point comes from: a fixed list (grid, random) or Optuna (Bayesian search).

The coordinator asks :meth:`PointSource.next` for a point to submit, and tells :meth:`done` each
result. Optuna runs ask/tell in the coordinator alone (never in workers sharing a study: trials left
RUNNING for ever by a dead worker), with the sampler chosen here explicitly (TPE, seeded; a sampler
is not stored with a study). The study lives in Heron's database as the sweep's points: a resumed
Bayesian sweep replays them into a fresh study before asking again. A repeated ask (TPE often
proposes a point twice) is answered from the stored result and never recomputed; a point the
strategy refuses (fast >= slow) is told as failed without reaching a worker.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, Protocol

from services.lab.model import PointResult, SweepSpec, point_key
from services.strategies.api import Strategy

#: Consecutive asks that bring nothing new before a random unevaluated candidate is enqueued.
MAX_REPEATS: Final = 20


class PointSource(Protocol):
    total: int

    def next(self) -> dict[str, Any] | None:
        """A point to submit now, or None (none left, or none until a running point completes)."""
        ...

    def done(self, key: str, result: PointResult) -> None: ...


class ListSource:
    """Grid and random search: the expanded points, less those done already."""

    def __init__(self, points: Iterable[Mapping[str, Any]], done: Iterable[str]) -> None:
        self._points = [dict(p) for p in points]
        self.total = len(self._points)
        skip = set(done)
        self._todo = [p for p in self._points if point_key(p) not in skip]
        self._todo.reverse()

    def next(self) -> dict[str, Any] | None:
        return self._todo.pop() if self._todo else None

    def done(self, key: str, result: PointResult) -> None:
        return None


def metric_value(result: PointResult, metric: str) -> float | None:
    if result.metrics is None or result.error:
        return None
    value = result.metrics.get(metric)
    return None if value is None else float(value)


class OptunaSource:
    """Bayesian search over the spec's space with Optuna's TPE sampler, driven by ask/tell.

    Each parameter is searched by its index in its (sorted, for numbers) list of values, so TPE sees
    numbers in order. ``total`` is the budget: distinct points computed, stored ones included.
    """

    def __init__(
        self,
        spec: SweepSpec,
        cls: type[Strategy],
        candidates: list[dict[str, Any]],
        budget: int,
        stored: Iterable[PointResult] = (),
    ) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution, IntDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self._spec, self._cls = spec, cls
        self._values: dict[str, list[Any]] = {}
        self._dists: dict[str, Any] = {}
        for name, values in spec.space.items():
            ordered = list(values)
            if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in ordered):
                ordered.sort()
                self._dists[name] = IntDistribution(0, len(ordered) - 1)
            else:
                self._dists[name] = CategoricalDistribution(list(range(len(ordered))))
            self._values[name] = ordered
        self.total = budget
        self._candidates = {point_key(p): p for p in candidates}
        self._results: dict[str, float | None] = {}
        self._pending: dict[str, list[int]] = {}
        self._rng = random.Random(spec.seed)
        sampler = optuna.samplers.TPESampler(seed=spec.seed)
        self.study = optuna.create_study(
            direction="minimize" if spec.metric == "max_drawdown" else "maximize", sampler=sampler
        )
        for result in stored:
            self._replay(result)

    def _indices(self, params: Mapping[str, Any]) -> dict[str, int] | None:
        out: dict[str, int] = {}
        for name, values in self._values.items():
            text = str(params.get(name))
            match = [i for i, v in enumerate(values) if str(v) == text]
            if not match:
                return None
            out[name] = match[0]
        return out

    def _replay(self, result: PointResult) -> None:
        """A stored point told to the fresh study (resume), so TPE starts where the sweep stopped."""
        indices = self._indices(result.params)
        if indices is None or result.key in self._results:
            return
        value = metric_value(result, self._spec.metric)
        self._results[result.key] = value
        state = (
            self._optuna.trial.TrialState.COMPLETE
            if value is not None
            else self._optuna.trial.TrialState.FAIL
        )
        self.study.add_trial(
            self._optuna.trial.create_trial(
                params=indices, distributions=self._dists, value=value, state=state
            )
        )

    def _tell(self, number: int, value: float | None) -> None:
        if value is None:
            self.study.tell(number, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(number, value)

    @property
    def _used(self) -> int:
        return len(self._results) + len(self._pending)

    def next(self) -> dict[str, Any] | None:
        if self._used >= self.total:
            return None
        for attempt in range(MAX_REPEATS * 5):
            if attempt and attempt % MAX_REPEATS == 0 and not self._enqueue_unseen():
                return None
            trial = self.study.ask(self._dists)
            point = {name: self._values[name][trial.params[name]] for name in self._values}
            key = point_key(point)
            if key in self._results:  # asked again: answered from the stored result
                self._tell(trial.number, self._results[key])
            elif key in self._pending:  # running now: told when it completes
                self._pending[key].append(trial.number)
            elif key not in self._candidates:  # the strategy refuses it (fast >= slow): never sent
                self._tell(trial.number, None)
            else:
                self._pending[key] = [trial.number]
                return point
        return None

    def _enqueue_unseen(self) -> bool:
        unseen = [k for k in self._candidates if k not in self._results and k not in self._pending]
        if not unseen:
            return False
        point = self._candidates[self._rng.choice(sorted(unseen))]
        indices = self._indices(point)
        if indices is None:
            return False
        self.study.enqueue_trial(indices)
        return True

    def done(self, key: str, result: PointResult) -> None:
        value = metric_value(result, self._spec.metric)
        self._results[key] = value
        for number in self._pending.pop(key, []):
            self._tell(number, value)
