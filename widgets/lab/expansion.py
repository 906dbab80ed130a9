"""A sweep spec's expansion (its points and the combinations the strategy refuses) as the lab window
needs it: a small grid expanded at once on the GUI thread, a large one on a worker thread (the engine
checks every combination: 100,000 take about a second), and the last few kept. GUI thread only."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from services.lab.model import SweepSpec
from widgets.lab.backend import LabBackend
from widgets.tasks import TaskBridge

#: a grid up to this many combinations is expanded on the GUI thread (a few ms)
SYNC_GRID = 5_000
#: a spec's points and its refused combinations with why (``LabBackend.expand``)
Expansion = tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]


def expansion_key(spec: SweepSpec) -> str:
    """What a spec's expansion depends on (not its dates, which move with the clock)."""
    what = (spec.strategy, spec.symbols, spec.search.value, dict(spec.space), dict(spec.fixed),
            spec.max_points, spec.seed)  # fmt: skip
    return repr(what)


class Expansions:
    def __init__(self, backend: LabBackend, tasks: TaskBridge) -> None:
        self.backend, self.tasks = backend, tasks
        self.known: dict[str, Expansion] = {}
        self._waiting: dict[str, list[Callable[[], object]]] = {}

    def get(self, spec: SweepSpec) -> Expansion | None:
        """Known, or expanded now when the grid is small; None for a large grid not expanded yet
        (see :meth:`later`). Raises ValueError."""
        key = expansion_key(spec)
        if key in self.known:
            return self.known[key]
        if math.prod(len(v) for v in spec.space.values()) > SYNC_GRID:
            return None
        return self._keep(key, self.backend.expand(spec))

    def _keep(self, key: str, expansion: Expansion) -> Expansion:
        self.known = {**dict(list(self.known.items())[-3:]), key: expansion}
        return expansion

    def later(
        self, spec: SweepSpec, then: Callable[[], object], failed: Callable[[BaseException], None]
    ) -> None:
        """Expand ``spec`` on a worker thread, then call ``then`` on the GUI thread (``failed`` with
        the engine's refusal); a second request for the same spec waits for the first."""
        key = expansion_key(spec)
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append(then)
            return
        self._waiting[key] = [then]

        def done(expansion: Expansion) -> None:
            self._keep(key, expansion)
            for call in self._waiting.pop(key, []):
                call()

        def refused(exc: BaseException) -> None:
            self._waiting.pop(key, None)
            failed(exc)

        self.tasks.run_blocking(lambda: self.backend.expand(spec), done, refused, name="heron-lab-expand")
