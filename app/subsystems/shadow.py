"""Shadow models: the tracker (rule model at once), warmed up on recent history, then trained models
loaded (or trained on first launch) well after start-up and, with a window, once the Shadow models
panel has been opened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from datetime import datetime, timedelta

from app import lifecycle as stages
from app.context import AppContext, Services, cancel_tasks, now, spawn
from app.runtime import freeze_late_load
from app.subsystems.marketdata import bar_builder
from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.marketdata.history import HistoryService
from services.shadow.inference import InferenceEngine, SklearnPredictor
from services.shadow.registry import DatabaseModelIndex, MemoryModelIndex, ModelRegistry, ModelRegistryError
from services.shadow.tracker import ShadowTracker
from services.shadow.training import TrainingDataError, train_models_async
from services.storage.errors import describe_db_error, describe_os_error

log = logging.getLogger("heron.app")

SHADOW_HORIZON = 5  # bars of the strategy/shadow interval
SHADOW_TRAIN_SYMBOLS = 3
#: Seconds after the services are built before the shadow warm-up fetches history.
SHADOW_WARMUP_DELAY_S = 3.0
#: Seconds after the warm-up before trained models are loaded (or trained on first launch).
SHADOW_MODELS_DELAY_S = 15.0


def build_shadow(ctx: AppContext, services: Services) -> None:
    tracker = ShadowTracker([InferenceEngine(None)], horizon=SHADOW_HORIZON)
    services.shadow = tracker
    # The models' hashes are kept in Heron's database, never beside the model files (whoever can
    # write that folder must not be able to vouch for a pickle); without a database, this session's.
    index = DatabaseModelIndex(services.db) if services.db is not None else MemoryModelIndex()
    services.models = ModelRegistry(ctx.paths.profile_dir / "models", index)
    ready = {"warm": False}

    def feed(bars: list[Bar]) -> None:
        if ready["warm"]:
            tracker.on_bars(bars)

    bar_builder(ctx, services).sinks.append(feed)
    spawn(services, "shadow", prepare_shadow(ctx, services, tracker, ready))
    ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "shadow models", lambda: cancel_tasks(services, "shadow"))


async def prepare_shadow(
    ctx: AppContext, services: Services, tracker: ShadowTracker, ready: dict[str, bool]
) -> None:
    """Warm the feature engines up on recent one-minute history, then load or train models.

    Until a trained model exists the tracker runs the momentum rule model, under its own name.
    """
    history, registry = services.history, services.models
    assert registry is not None
    symbols = list(ctx.settings.watchlist)
    # Off the way to a usable window: the panels and the first history come first (headless runs
    # have no window to wait for).
    windowed = not getattr(ctx.args, "headless", False)
    if windowed:
        await asyncio.sleep(SHADOW_WARMUP_DELAY_S)
    end = now().replace(second=0, microsecond=0)
    if history is not None:
        for symbol in symbols:
            try:
                bars = await history.bars(symbol, Timeframe.MIN_1, end - timedelta(minutes=90), end)
            except Exception as exc:
                log.info("shadow warm-up: no history for %s (%s)", symbol, exc)
                continue
            tracker.warm_up(bars)
    ready["warm"] = True
    log.info("shadow tracker warmed up; rule model %s active", tracker.engines[0].key)
    # Loading or training a model imports scikit-learn (seconds of work holding the GIL, which the
    # GUI thread needs, and some 90 MB kept for the session): wait until start-up is well over, and
    # with a window until the Shadow models panel is first opened. The rule model covers the meantime.
    if windowed:
        await asyncio.sleep(SHADOW_MODELS_DELAY_S)
        if not services.shadow_models_wanted.is_set():
            log.info("trained shadow models load when the Shadow models panel is first opened")
            await services.shadow_models_wanted.wait()
    try:
        await _load_or_train(tracker, registry, history, symbols, end)
    finally:
        freeze_late_load("shadow models")


async def _load_or_train(
    tracker: ShadowTracker,
    registry: ModelRegistry,
    history: HistoryService | None,
    symbols: list[str],
    end: datetime,
) -> None:
    loaded = await asyncio.to_thread(load_models, registry)
    if not loaded and history is not None:
        bars_all: list[Bar] = []
        for symbol in symbols[:SHADOW_TRAIN_SYMBOLS]:
            with contextlib.suppress(Exception):
                bars_all += await history.bars(symbol, Timeframe.MIN_1, end - timedelta(days=2), end)
        try:
            reports = await train_models_async(bars_all, registry, horizon=SHADOW_HORIZON)
        except TrainingDataError as exc:
            log.info("shadow models not trained: %s", exc)
            return
        except (OSError, sqlite3.Error, ModelRegistryError) as exc:
            # a full disk or an unwritable model folder: the rule model keeps running
            if isinstance(exc, OSError):
                what = describe_os_error(exc, registry.root)
            else:
                what = describe_db_error(exc)
            log.error(
                "shadow models not trained (rule model %s stays active): %s", tracker.engines[0].key, what
            )
            return
        log.info(
            "shadow models trained: %s",
            ", ".join(
                f"{r.model.name} {r.model.version} (test accuracy {r.test_accuracy:.3f})" for r in reports
            ),
        )
        loaded = await asyncio.to_thread(load_models, registry)
    for predictor in loaded:
        tracker.engines.append(InferenceEngine(predictor))
        log.info("shadow model %s %s added", predictor.name, predictor.version)


def load_models(registry: ModelRegistry) -> list[SklearnPredictor]:
    out: list[SklearnPredictor] = []
    try:
        names = registry.names()
    except ModelRegistryError as exc:
        log.error("model registry: %s", exc)
        return out
    for name in names:
        try:
            out.append(SklearnPredictor(registry.load(name)))
        except (ModelRegistryError, ValueError) as exc:
            log.error("shadow model %s not loaded: %s", name, exc)
    return out
