"""What the strategy lab window needs from the sweep engine, as small protocols: read and expand a
spec, start a sweep (on the engine's own thread) and stop it, and the sweeps stored in Heron's
database. The composition root adapts ``services.lab`` to them (``app/qt/panels/lab.py``); tests use
a fake that reports points from a thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from services.lab.model import PointResult, SweepListener, SweepSpec, SweepState


@dataclass(frozen=True, slots=True)
class Engine:
    """Where a sweep runs: a local cluster on this machine (``scheduler`` None) or a Dask
    scheduler's address; ``workers`` None for the engine's default (cores − 1, at least 1)."""

    scheduler: str | None = None
    workers: int | None = None

    def describe(self) -> str:
        if self.scheduler is None:
            size = "default size" if self.workers is None else f"{self.workers} workers"
            return f"local cluster ({size})"
        return f"cluster at {self.scheduler}"


@dataclass(frozen=True, slots=True)
class PastSweep:
    """A sweep stored in the database, as the lab's list shows it."""

    sweep_id: str
    spec: SweepSpec
    state: SweepState
    total: int
    completed: int
    started: datetime | None = None


class SweepRun(Protocol):
    """A started sweep. ``cancel`` drops queued points at once and stops a running one soon."""

    @property
    def sweep_id(self) -> str: ...

    @property
    def done(self) -> bool: ...

    def cancel(self) -> None: ...


class LabBackend(Protocol):
    """The sweep engine and store. ``parse``/``expand`` are quick and called on the GUI thread (a large
    grid's expansion on a worker thread); ``start`` returns at once (the sweep runs on the engine's
    thread and reports to ``listener`` there); ``past``/``results`` read the database and
    ``stitched_equity`` runs backtests: both are called off the GUI thread."""

    def parse(self, data: Mapping[str, Any]) -> SweepSpec:
        """A validated spec from the headless SPEC JSON form; raises ValueError naming the field
        (``.field`` where the engine knows it)."""

    def expand(self, spec: SweepSpec) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
        """The points the spec runs and the combinations refused, each with why."""

    def start(
        self, spec: SweepSpec, listener: SweepListener, *, engine: Engine, resume: str | None = None
    ) -> SweepRun: ...

    def past(self) -> Sequence[PastSweep]: ...

    def results(self, sweep_id: str) -> Sequence[PointResult]: ...

    def stitched_equity(
        self, spec: SweepSpec, results: Sequence[PointResult]
    ) -> Sequence[tuple[datetime, Decimal]]:
        """A walk-forward's out-of-sample equity, fold after fold, recomputed locally (blocking)."""
