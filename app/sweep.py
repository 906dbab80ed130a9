"""``--headless --sweep SPEC.json --sweep-report OUT.json``: a parameter sweep without a window and
without the trading services.

Composition: the SPEC is checked first (a bad one exits 2 with one line naming the field, before
anything starts); then the database opens as the app opens it (the candle store and the sweep
tables); history comes from the candle store, and what it lacks from the broker's bars endpoint
(``/v2/stocks/bars``) through :class:`~services.marketdata.history.HistoryService`, which writes it
back. In local mode that is the local exchange (started here, stopped once the bars are in); in the
Alpaca modes only stored bars are used (a missing range is named). The sweep runs on a local Dask
cluster or ``--scheduler``; SIGINT/SIGTERM cancel it. One JSON report is written atomically; the
exit code is 0 only when the sweep completed and at least one point succeeded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.domain.enums import Mode
from services.domain.models import Bar
from services.lab.cluster import ClusterError, LabSettings, check_settings
from services.lab.coordinator import BarLoader, SweepRunner
from services.lab.model import PointResult, SweepOutcome, SweepProgress, SweepSpec, SweepState
from services.lab.spec import SpecError, expand, params_json, parse_spec, spec_to_json
from services.lab.store import SweepRecord, SweepStore
from services.lab.versions import heron_code_version
from services.lab.walkforward import stitched_equity, summary
from services.storage import Database, StorageError
from services.storage.candles import CANDLES_SCHEMA, CandleStore
from services.storage.files import atomic_write_bytes
from services.strategies.api import Strategy
from services.strategies.builtin import builtin_registry

if TYPE_CHECKING:
    import argparse

    from app.launch import Launch
    from app.logging_setup import SecretRedactor
    from app.paths import ProfilePaths
    from app.settings import Settings

log = logging.getLogger("heron.app")

#: The most a SPEC file may weigh (a space is a few lists of numbers).
MAX_SPEC_BYTES = 1024 * 1024
#: How often the log says how far the sweep got.
LOG_EVERY_S = 5.0

EXIT_BAD_SPEC = 2
#: How many of the most recent sweeps are searched for an unfinished one of the same SPEC.
RESUME_LOOKBACK = 1000


def load_spec(path: Path, registry: Mapping[str, type[Strategy]]) -> SweepSpec:
    """Read and check the SPEC file; :class:`SpecError` names the field (``spec`` for the file)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError("spec", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError("spec", f"{path} is {len(raw):,} bytes; a SPEC is at most {MAX_SPEC_BYTES:,}")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except DuplicateKey as exc:
        raise SpecError("spec", f"{path}: {exc}; which one is meant?") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError("spec", f"{path} is not JSON ({exc})") from None
    return parse_spec(data, registry, now=_now())


class DuplicateKey(ValueError):
    """A JSON object in a SPEC names the same key twice (JSON itself keeps the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"the key {key!r} is given twice in one object")
        out[key] = value
    return out


def runnable(
    spec: SweepSpec, registry: Mapping[str, type[Strategy]]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """The spec's points and its refused combinations; a space the strategy refuses whole is a bad
    SPEC (:class:`SpecError` naming ``space`` and the first refusal), found before anything starts."""
    valid, refused = expand(spec, registry)
    if not valid:
        first = f" (first: {params_json(refused[0][0])}: {refused[0][1]})" if refused else ""
        raise SpecError("space", f"the strategy refuses every one of its {len(refused)} combinations{first}")
    return valid, refused


def verdict(outcome: SweepOutcome, points: list[PointResult], *, resumable: bool = True) -> str | None:
    """Why a finished sweep failed (None: it completed with at least one point that succeeded).
    ``resumable``: the SPEC names a fixed range, so running it again resumes the sweep."""
    if outcome.state is not SweepState.COMPLETED:
        why = outcome.message if outcome.message and outcome.message != outcome.state.value else ""
        return (
            f"sweep {outcome.sweep_id} did not complete: {outcome.state.value}"
            + (f" ({why})" if why else "")
            + (
                "; running the same SPEC again resumes it (--sweep-new starts afresh)"
                if resumable
                else "; its range ends now, so running it again starts afresh: "
                "give the SPEC an end to resume it"
            )
        )
    if outcome.best is None and not any(p.metrics is not None and not p.error for p in points):
        first = next((p for p in points if p.error), None)
        error = (
            f": the first error, at {params_json(first.params)}: {_one_line(first.error or '')}"
            if first
            else ""
        )
        return f"sweep {outcome.sweep_id} completed but no point succeeded ({len(points)} run){error}"
    return None


def unfinished(store: SweepStore, spec: SweepSpec) -> SweepRecord | None:
    """The most recent stored sweep of exactly this spec (strategy, symbols, resolved start and end,
    timeframe, search, space, fixed, costs, walk-forward: :func:`spec_to_json`) when it did not
    complete: cancelled, failed, or still marked running by a Heron that died (this process holds
    the profile, so no other one runs it). None when there is none or it completed."""
    wanted = json.loads(json.dumps(spec_to_json(spec), sort_keys=True))
    for record in store.list(limit=RESUME_LOOKBACK):
        if record.spec == wanted:
            return None if record.state is SweepState.COMPLETED else record
    return None


def fixed_range(path: Path) -> bool:
    """Whether the SPEC at ``path`` (already checked) names its end, so a rerun covers the same range."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "end" in data


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def lab_settings(args: argparse.Namespace) -> LabSettings:
    return LabSettings(
        scheduler=getattr(args, "scheduler", None),
        workers=getattr(args, "workers", None),
        allow_insecure_tcp=bool(getattr(args, "allow_insecure_tcp", False)),
        tls_ca=getattr(args, "tls_ca", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
    )


class HistoryError(RuntimeError):
    """The bars a sweep needs cannot be had; the message says which and why."""


def _describe(spec: SweepSpec, symbol: str) -> str:
    return f"{spec.timeframe.value} bars of {symbol} from {spec.start.isoformat()} to {spec.end.isoformat()}"


async def _fetch(
    spec: SweepSpec, candles: CandleStore, url: str, key_id: str, secret: str
) -> dict[str, list[Bar]]:
    from services.marketdata.history import HistoryService

    history = HistoryService(key_id, secret, base_url=url, store=candles)
    try:
        out: dict[str, list[Bar]] = {}
        for symbol in spec.symbols:
            try:
                out[symbol] = await history.bars(symbol, spec.timeframe, spec.start, spec.end)
            except Exception as exc:
                raise HistoryError(
                    f"{_describe(spec, symbol)} could not be fetched from {url}: {exc}"
                ) from exc
        return out
    finally:
        await history.close()


async def _from_exchange(
    args: argparse.Namespace,
    paths: ProfilePaths,
    settings: Settings,
    launch: Launch,
    redactor: SecretRedactor,
    spec: SweepSpec,
    candles: CandleStore,
) -> dict[str, list[Bar]]:
    from app.exchange_process import ExchangeError, connect_external
    from app.local_exchange import LocalExchangeLauncher

    launcher: LocalExchangeLauncher | None = None
    try:
        if args.exchange_url is not None:
            session = await connect_external(args.exchange_url, args.exchange_keys)
        else:
            early = launch.early_exchange  # started by main.py: adopted when it fits this run
            launcher = early if isinstance(early, LocalExchangeLauncher) else None
            if launcher is not None and (
                launcher.exchange_dir != paths.exchange_dir or launcher.settings != settings.local_exchange
            ):
                await launcher.stop()
                launcher = None
            if launcher is None:
                launcher = LocalExchangeLauncher(paths.exchange_dir, settings.local_exchange)
            launcher.listen_for_secret(redactor.register)
            session = await launcher.start()
        redactor.register(session.keys.secret)
        log.info("sweep history: bars the candle store lacks come from the exchange at %s", session.url)
        return await _fetch(spec, candles, session.url, session.keys.key_id, session.keys.secret)
    except ExchangeError as exc:
        raise HistoryError(f"the local exchange could not start for the sweep's history: {exc}") from exc
    finally:
        if launcher is not None:
            await launcher.stop()


async def _cancellable(
    work: Awaitable[dict[str, list[Bar]]], interrupt: _Interrupt | None
) -> dict[str, list[Bar]]:
    """``work``, cancelled by the interrupt's signal (its handler runs between this loop's steps)."""
    task = asyncio.ensure_future(work)
    if interrupt is None:
        return await task
    loop = asyncio.get_running_loop()
    interrupt.cancel_load = lambda: loop.call_soon_threadsafe(task.cancel)
    try:
        if interrupt.signum is not None:
            task.cancel()
        return await task
    finally:
        interrupt.cancel_load = None


def load_history(
    args: argparse.Namespace,
    paths: ProfilePaths,
    settings: Settings,
    mode: Mode,
    launch: Launch,
    redactor: SecretRedactor,
    spec: SweepSpec,
    candles: CandleStore,
    interrupt: _Interrupt | None = None,
) -> dict[str, list[Bar]]:
    """Every symbol's bars over the spec's range, loaded once (raises :class:`HistoryError`; a
    SIGINT or SIGTERM meanwhile stops the load: ``asyncio.CancelledError``)."""
    if mode is Mode.LOCAL:
        fetch = _from_exchange(args, paths, settings, launch, redactor, spec, candles)
        bars = asyncio.run(_cancellable(fetch, interrupt))
    else:
        bars = {s: candles.range_bars(s, spec.timeframe, spec.start, spec.end) for s in spec.symbols}
    empty = [s for s in spec.symbols if not bars.get(s)]
    if empty and mode is Mode.LOCAL:
        raise HistoryError(f"neither the candle store nor the exchange has {_describe(spec, empty[0])}")
    if empty:
        raise HistoryError(
            f"the candle store has no {_describe(spec, empty[0])}; open its chart over that range in "
            f"{mode.value} mode to fetch it, or run the sweep in local mode"
        )
    return bars


class _LogListener:
    """Says how far the sweep got every few seconds; keeps nothing else (the store has the points)."""

    def __init__(self) -> None:
        self._next = 0.0

    def on_point(self, result: PointResult) -> None:
        if result.error:
            log.info("sweep point %s failed: %s", dict(result.params), result.error)

    def on_progress(self, progress: SweepProgress) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + LOG_EVERY_S
        eta = f", about {progress.eta_s:.0f} s left" if progress.eta_s else ""
        log.info("sweep %s: %d of %d points (%d errors) on %d workers%s", progress.sweep_id,
                 progress.completed, progress.total, progress.errors, progress.workers, eta)  # fmt: skip

    def on_finished(self, outcome: SweepOutcome) -> None:
        log.info("sweep %s %s: %d of %d points in %.1f s%s", outcome.sweep_id, outcome.state.value,
                 outcome.completed, outcome.total, outcome.elapsed_s,
                 f" ({outcome.message})" if outcome.message else "")  # fmt: skip


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _point(result: PointResult) -> dict[str, Any]:
    metrics = {k: _finite(v) for k, v in (result.metrics or {}).items()}
    out: dict[str, Any] = {"params": params_json(result.params), "metrics": metrics}
    if result.error:
        out["error"] = result.error
    if result.fold is not None:
        out["fold"] = result.fold
        out["phase"] = result.phase
    if result.worker:
        out["worker"] = result.worker
    out["elapsed_s"] = round(result.elapsed_s, 4)
    return out


def build_report(
    spec: SweepSpec, outcome: SweepOutcome, points: list[PointResult], refused: int
) -> dict[str, Any]:
    return {
        "sweep_id": outcome.sweep_id,
        "strategy": spec.strategy,
        "search": spec.search.value,
        "state": outcome.state.value,
        "message": outcome.message,
        "total": outcome.total,
        "completed": outcome.completed,
        "errors": outcome.errors,
        "refused": refused,
        "workers": outcome.workers,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "metric": spec.metric,
        "heron_version": heron_code_version(),
        "spec": spec_to_json(spec),
        "points": [_point(p) for p in points],
        "best": None if outcome.best is None else _point(outcome.best),
    }


def walk_forward_report(
    spec: SweepSpec,
    points: list[PointResult],
    load: BarLoader,
    registry: Mapping[str, type[Strategy]],
) -> dict[str, Any]:
    """The in-sample/out-of-sample comparison and the stitched out-of-sample equity (recomputed here)."""
    out: dict[str, Any] = {
        k: _finite(v) if not isinstance(v, list) else v for k, v in summary(spec, points).items()
    }
    curve = stitched_equity(spec, points, load, registry)
    out["out_of_sample_equity"] = [[ts.isoformat(), str(equity)] for ts, equity in curve]
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_sweep(
    args: argparse.Namespace,
    paths: ProfilePaths,
    settings: Settings,
    mode: Mode,
    launch: Launch,
    redactor: SecretRedactor,
) -> int:
    """The headless sweep; returns the exit code (2: bad SPEC or settings, 1: did not complete)."""
    registry = builtin_registry()
    try:
        spec = load_spec(args.sweep, registry)
        lab = lab_settings(args)
        check_settings(lab)
        valid, refused = runnable(spec, registry)
    except (SpecError, ClusterError) as exc:
        print(f"heron: --sweep {args.sweep}: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_SPEC
    interrupt = _Interrupt()
    interrupt.install()
    try:
        db = Database.open(args.db, paths.profile_dir, (CANDLES_SCHEMA,))
    except StorageError as exc:
        log.error("sweep failed: the database could not be opened: %s", _one_line(str(exc)))
        return 1
    bars: dict[str, list[Bar]] | None = None
    try:
        bars = load_history(args, paths, settings, mode, launch, redactor, spec, CandleStore(db), interrupt)
    except HistoryError as exc:
        log.error("sweep failed: %s", _one_line(str(exc)))
        db.dispose()
        return 1
    except asyncio.CancelledError:
        pass  # the interrupt stopped the load: said below
    if bars is None or interrupt.signum is not None:
        why = f"interrupted ({interrupt.name or 'cancelled'}) while its history loaded"
        log.error("sweep not started: %s", why)
        db.dispose()
        outcome = SweepOutcome("", SweepState.CANCELLED, len(valid), 0, 0, 0, 0.0, None, why)
        _write_report(args.sweep_report, {**build_report(spec, outcome, [], len(refused)), "sweep_id": None})
        return 1
    try:
        return _run(args, spec, db, bars, lab, registry, len(refused), interrupt)
    finally:
        db.dispose()


def _write_report(path: Path, report: dict[str, Any]) -> bool:
    """The report written atomically; False (said in the log) when it could not be."""
    try:
        atomic_write_bytes(path, (json.dumps(report, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    except OSError as exc:
        log.error("sweep report %s could not be written: %s", path, exc.strerror or exc)
        return False
    log.info("sweep report written to %s", path)
    return True


class _Interrupt:
    """SIGINT/SIGTERM for the whole headless sweep: the sweep is cancelled (its report then says so)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.handle: Any = None
        #: while the history loads: stops the load (it may fetch for minutes)
        self.cancel_load: Callable[[], object] | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum: int, _frame: object) -> None:
        self.signum = signum
        log.info("sweep: %s received, cancelling", self.name)
        if self.handle is not None:
            self.handle.cancel()
        if self.cancel_load is not None:
            self.cancel_load()


def _run(
    args: argparse.Namespace,
    spec: SweepSpec,
    db: Database,
    bars: dict[str, list[Bar]],
    lab: LabSettings,
    registry: Mapping[str, type[Strategy]],
    refused: int,
    interrupt: _Interrupt,
) -> int:
    store = SweepStore(db)

    def load(symbol: str, timeframe: Any, start: Any, end: Any) -> list[Bar]:
        return [b for b in bars.get(symbol, []) if start <= b.ts < end]

    runner = SweepRunner(store, load, lab, registry)
    resume = None if getattr(args, "sweep_new", False) else unfinished(store, spec)
    if resume is not None:
        line = (f"resuming sweep {resume.id}: {resume.completed} of {resume.total} points done "
                f"({resume.state.value}; --sweep-new starts afresh)")  # fmt: skip
        log.info("%s", line)
        print(f"heron: {line}", file=sys.stderr)  # on the terminal too: the run is not a fresh one
    try:
        handle = interrupt.handle = runner.start(spec, _LogListener(), resume=resume.id if resume else None)
        if interrupt.signum is not None:
            handle.cancel()
        outcome = None
        while outcome is None:  # short waits: the signal handlers run on this thread
            outcome = handle.wait(0.5)
        points = store.results(outcome.sweep_id)
        report = build_report(spec, outcome, points, refused)
        if spec.walk_forward is not None:
            report["walk_forward"] = walk_forward_report(spec, points, load, registry)
    finally:
        runner.close()
    if not _write_report(args.sweep_report, report):
        return 1
    failed = verdict(outcome, points, resumable=fixed_range(args.sweep))
    if failed:
        log.error("%s", failed)
        return 1
    return 0
