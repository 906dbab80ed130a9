"""The chart's indicators: the registry, each ``Indicator`` on its own, and agreement with the
strategies (the same bars give the chart's RSI / SMA lines the values the strategies decide on)."""

from __future__ import annotations

import math
from datetime import UTC

import numpy as np
import pytest

from services.domain.models import Bar
from services.indicators import stream
from services.strategies.builtin import reversion, sma_crossover
from services.strategies.builtin.reversion import BollingerReversion, RsiReversion
from services.strategies.synthetic import synthetic_bars
from widgets.chart.indicators import INDICATORS, REGISTRY, Indicator, Pane, create_indicators
from widgets.chart.sample import random_walk_bars
from widgets.chart.store import BarStore


def chart_store(bars: list[Bar]) -> BarStore:
    """The bars as the terminal hands them to the chart (``app.panels_trading``): float columns."""
    store = BarStore()
    store.load(
        {
            "t": np.array([int(b.ts.timestamp()) * 10**9 for b in bars], dtype=np.int64),
            "o": np.array([float(b.open) for b in bars]),
            "h": np.array([float(b.high) for b in bars]),
            "l": np.array([float(b.low) for b in bars]),
            "c": np.array([float(b.close) for b in bars]),
            "v": np.array([float(b.volume) for b in bars]),
        }
    )
    return store


def chart_line(indicator: Indicator, store: BarStore, line: int = 0) -> np.ndarray:
    """One line over every bar: the history values, then the live bar's value (as the chart draws)."""
    values = indicator.compute(store)
    assert store.live is not None
    return np.append(values[line], indicator.live(store, values, store.live)[line])


def test_registry_lists_the_toolbar_indicators_in_order() -> None:
    assert INDICATORS == ("SMA", "EMA", "VWAP", "BB", "RSI")
    made = create_indicators(UTC)
    assert list(made) == list(REGISTRY)
    assert all(made[name].name == name for name in made)
    assert made["RSI"].pane is Pane.OSCILLATOR
    assert all(made[name].pane is Pane.PRICE for name in ("SMA", "EMA", "VWAP", "BB"))
    assert [len(made[name].lines) for name in INDICATORS] == [1, 1, 1, 3, 1]
    assert dict(made["SMA"].parameters) == {"period": 20}
    assert dict(made["BB"].parameters) == {"period": 20, "k": 2.0}
    assert create_indicators(UTC)["RSI"] is not made["RSI"]  # each chart keeps its own state


def test_chart_rsi_equals_the_strategy_rsi_on_the_same_bars() -> None:
    bars = synthetic_bars("AAPL", 800, seed=3)
    assert reversion.RSI is stream.RSI  # the strategy's RSI is the library's
    strategy = RsiReversion({"symbols": "AAPL", "period": 14})
    strategy.on_start()
    decided = []
    for bar in bars:
        levels = strategy._levels(bar)
        decided.append(math.nan if levels is None else levels[0])
    chart = chart_line(create_indicators(UTC)["RSI"], chart_store(bars))
    np.testing.assert_array_equal(np.isnan(chart), np.isnan(decided))
    np.testing.assert_allclose(chart, decided, rtol=0.0, atol=1e-9, equal_nan=True)
    assert 0.0 < np.nanmin(chart) < 40.0 < 60.0 < np.nanmax(chart) < 100.0  # a real range, not flat


def test_chart_sma_equals_the_strategy_sma_on_the_same_bars() -> None:
    bars = synthetic_bars("AAPL", 500, seed=4)
    assert sma_crossover.SMA is stream.SMA
    strategy_sma = stream.SMA(20)  # what SmaCrossover builds for a 20-bar window
    want = [math.nan if (v := strategy_sma.update(float(b.close))) is None else v for b in bars]
    chart = chart_line(create_indicators(UTC)["SMA"], chart_store(bars))
    np.testing.assert_array_equal(np.isnan(chart), np.isnan(want))
    np.testing.assert_allclose(chart, want, rtol=1e-12, equal_nan=True)
    # Bollinger reversion decides on a middle band that is the same 20-bar SMA.
    bands = BollingerReversion({"symbols": "AAPL", "window": 20, "k": 2.0})
    bands.on_start()
    middles = [math.nan if (lv := bands._levels(b)) is None else lv[2] for b in bars]
    np.testing.assert_allclose(chart, middles, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", INDICATORS)
def test_extend_and_live_continue_the_full_computation(name: str) -> None:
    """Appending bars through ``extend`` gives what a full ``compute`` gives over all of them, and
    ``live`` gives the value a full computation would give the live bar."""
    d = random_walk_bars(700, seed=5)
    first, rest = {k: v[:600] for k, v in d.items()}, {k: v[600:] for k, v in d.items()}
    store = BarStore()
    store.load(first)
    indicator = create_indicators(UTC)[name]
    values = indicator.compute(store)
    m_old = store.n_history
    store.append(rest)
    tail = indicator.extend(store, m_old, values)
    assert tail is not None
    full = create_indicators(UTC)[name].compute(store)
    for old, new, want in zip(values, tail, full, strict=True):
        np.testing.assert_allclose(np.append(old, new), want, rtol=1e-9, equal_nan=True)
    assert store.live is not None
    live = indicator.live(store, [np.append(a, b) for a, b in zip(values, tail, strict=True)], store.live)
    closed = BarStore()
    after = {k: v[-1:] for k, v in d.items()} | {"t": d["t"][-1:] + (d["t"][-1] - d["t"][-2])}
    closed.load({k: np.append(v, after[k]) for k, v in d.items()})  # the live bar joins history
    want_live = [float(a[-1]) for a in create_indicators(UTC)[name].compute(closed)]
    np.testing.assert_allclose(live, want_live, rtol=1e-9)


def test_the_symbol_box_shows_a_whole_pair_however_narrow_the_chart(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At its narrowest (a 1366-px screen) the chart's toolbar squeezed the symbol box until "AAPL"
    read "APL"; the box keeps room for "BTC/USD", and the toolbar's buttons are as wide as their
    labels so the chart pane's minimum does not grow."""
    from widgets.chart.panel import ChartPanel

    panel = ChartPanel(visible_bars=50)
    qtbot.addWidget(panel)
    panel.resize(panel.minimumSizeHint().width(), 400)
    panel.show()
    qtbot.waitExposed(panel)
    box = panel.symbol_edit
    assert box.width() >= box.fontMetrics().horizontalAdvance("BTC/USD") + 8
    assert panel.minimumSizeHint().width() <= 555  # the chart pane on a 1366-px screen
