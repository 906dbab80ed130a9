"""Trained shadow models (scikit-learn, some 90 MB) load once they are wanted: with a window when the
Shadow models panel is first on screen, headless at once. The rule model runs from the start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.context import Services
from app.subsystems import shadow as subsystem
from services.domain.enums import Mode
from services.shadow.inference import InferenceEngine
from services.shadow.registry import MemoryModelIndex, ModelRegistry
from services.shadow.tracker import ShadowTracker
from tests.support.polling import async_wait_for


def _setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, headless: bool
) -> tuple[Any, Services, list[int]]:
    monkeypatch.setattr(subsystem, "SHADOW_WARMUP_DELAY_S", 0.0)
    monkeypatch.setattr(subsystem, "SHADOW_MODELS_DELAY_S", 0.0)
    loads: list[int] = []
    monkeypatch.setattr(subsystem, "load_models", lambda registry: loads.append(1) or [])
    ctx = SimpleNamespace(
        settings=SimpleNamespace(watchlist=["AAPL"]), args=SimpleNamespace(headless=headless)
    )
    services = Services(Mode.LOCAL)
    services.models = ModelRegistry(tmp_path / "models", MemoryModelIndex())
    return ctx, services, loads


def test_with_a_window_models_load_only_once_the_panel_is_wanted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, services, loads = _setup(tmp_path, monkeypatch, headless=False)
    tracker = ShadowTracker([InferenceEngine(None)])
    ready = {"warm": False}

    async def run() -> None:
        task = asyncio.ensure_future(subsystem.prepare_shadow(ctx, services, tracker, ready))
        await async_wait_for("warmed up", lambda: ready["warm"], 5)
        for _ in range(20):
            await asyncio.sleep(0)
        assert loads == [] and not task.done()
        services.shadow_models_wanted.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert loads == [1]


def test_headless_models_load_without_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, services, loads = _setup(tmp_path, monkeypatch, headless=True)
    tracker = ShadowTracker([InferenceEngine(None)])
    asyncio.run(asyncio.wait_for(subsystem.prepare_shadow(ctx, services, tracker, {"warm": False}), 5))
    assert loads == [1] and not services.shadow_models_wanted.is_set()
