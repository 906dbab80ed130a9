"""The shadow tracker: predict on every closed bar, log, score when the horizon passes, compare models.

Per closed bar of a symbol: the feature engine updates; every inference engine predicts on the new
vector; each prediction is logged (model, version, features, horizon, probability, direction, ts,
entry close). When ``horizon`` more bars of that symbol have closed, the outcome is filled in:
``up`` means the close ``horizon`` bars later is strictly higher than the entry close (the same
label training uses). Scoring uses only bars that have happened; the pending queue is FIFO per
symbol, so a prediction is never scored early.

Per-model metrics (keyed by model name and version): hit rate (predicted direction == actual),
precision and recall of the "up" calls, Brier score, a 10-bin calibration table, and the P&L had
each prediction been traded (``direction × (exit − entry) × qty``, Decimal, no costs).

Thread: the event-loop thread (bus handlers). Nothing here can place, cancel or change an order:
the tracker holds market data and models only.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.domain.bus import EventBus, Subscription
from services.domain.events import BarEvent, QuoteEvent
from services.domain.models import Bar, Quote
from services.shadow.features import FeatureEngine, FeatureVector
from services.shadow.inference import InferenceEngine, Prediction

log = logging.getLogger(__name__)

ZERO = Decimal(0)
CALIBRATION_BINS = 10


@dataclass(slots=True)
class PredictionRecord:
    id: int
    model: str
    version: str
    symbol: str
    ts: datetime
    horizon: int
    prob_up: float
    direction: int
    entry: Decimal
    features: tuple[float, ...]
    fallback_for: str | None = None
    exit: Decimal | None = None
    exit_ts: datetime | None = None
    actual_up: bool | None = None

    @property
    def scored(self) -> bool:
        return self.actual_up is not None

    @property
    def hit(self) -> bool | None:
        if self.actual_up is None:
            return None
        return (self.direction == 1) == self.actual_up


@dataclass(slots=True)
class CalibrationBin:
    low: float
    high: float
    count: int = 0
    sum_prob: float = 0.0
    ups: int = 0

    @property
    def mean_prob(self) -> float | None:
        return self.sum_prob / self.count if self.count else None

    @property
    def observed_up(self) -> float | None:
        return self.ups / self.count if self.count else None


@dataclass(slots=True)
class ModelMetrics:
    name: str
    version: str
    predictions: int = 0
    scored: int = 0
    hits: int = 0
    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    brier_sum: float = 0.0
    pnl: Decimal = ZERO
    calibration: list[CalibrationBin] = field(
        default_factory=lambda: [
            CalibrationBin(i / CALIBRATION_BINS, (i + 1) / CALIBRATION_BINS) for i in range(CALIBRATION_BINS)
        ]
    )

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.scored if self.scored else None

    @property
    def precision(self) -> float | None:
        called = self.true_pos + self.false_pos
        return self.true_pos / called if called else None

    @property
    def recall(self) -> float | None:
        actual = self.true_pos + self.false_neg
        return self.true_pos / actual if actual else None

    @property
    def brier(self) -> float | None:
        return self.brier_sum / self.scored if self.scored else None

    def score(self, rec: PredictionRecord, qty: Decimal) -> None:
        assert rec.actual_up is not None and rec.exit is not None
        up = rec.actual_up
        self.scored += 1
        if (rec.direction == 1) == up:
            self.hits += 1
        if rec.direction == 1 and up:
            self.true_pos += 1
        elif rec.direction == 1:
            self.false_pos += 1
        elif up:
            self.false_neg += 1
        y = 1.0 if up else 0.0
        self.brier_sum += (rec.prob_up - y) ** 2
        b = self.calibration[min(CALIBRATION_BINS - 1, int(rec.prob_up * CALIBRATION_BINS))]
        b.count += 1
        b.sum_prob += rec.prob_up
        b.ups += 1 if up else 0
        self.pnl += rec.direction * (rec.exit - rec.entry) * qty


class ShadowTracker:
    """Runs inference engines side by side on closed bars and scores them.

    ``on_scored(record)`` (optional) receives each completed record, e.g. to append it to a file.
    """

    def __init__(
        self,
        engines: Sequence[InferenceEngine],
        *,
        horizon: int = 5,
        qty: Decimal = Decimal(1),
        log_size: int = 100_000,
        on_scored: Callable[[PredictionRecord], None] | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError("horizon must be >= 1 bar")
        if not engines:
            raise ValueError("the shadow tracker needs at least one inference engine")
        self.engines = list(engines)
        self.horizon = horizon
        self.qty = qty
        self.records: deque[PredictionRecord] = deque(maxlen=log_size)
        self._features: dict[str, FeatureEngine] = {}
        self._pending: dict[str, deque[tuple[int, list[PredictionRecord]]]] = {}
        self._bar_index: dict[str, int] = {}
        self._metrics: dict[tuple[str, str], ModelMetrics] = {}
        self._next_id = 0
        self.predictions = 0
        self.scored = 0
        self._on_scored = on_scored
        self._subs: list[Subscription] = []

    # -- wiring --------------------------------------------------------------------------------
    def attach(self, bus: EventBus) -> None:
        self.detach()
        self._subs = [
            bus.subscribe(BarEvent, self._on_bar_event),
            bus.subscribe(QuoteEvent, self._on_quote_event),
        ]

    def detach(self) -> None:
        for sub in self._subs:
            sub.cancel()
        self._subs = []

    def _on_bar_event(self, event: BarEvent) -> None:
        if not event.is_partial:
            self.on_bar(event.bar)

    def _on_quote_event(self, event: QuoteEvent) -> None:
        self.on_quote(event.quote)

    # -- data ----------------------------------------------------------------------------------
    def on_quote(self, quote: Quote) -> None:
        self._engine(quote.symbol).on_quote(quote)

    def on_bar(self, bar: Bar) -> list[PredictionRecord]:
        """Score what is due, then predict on this bar. Returns the new prediction records."""
        return self.on_bars([bar])

    def on_bars(self, bars: Sequence[Bar]) -> list[PredictionRecord]:
        """Handle closed bars of several symbols at once; predictions are batched per engine."""
        vectors: list[FeatureVector] = []
        for bar in bars:
            index = self._bar_index.get(bar.symbol, -1) + 1
            self._bar_index[bar.symbol] = index
            self._score_due(bar, index)
            vector = self._engine(bar.symbol).update(bar)
            if vector is not None:
                vectors.append(vector)
        made: list[PredictionRecord] = []
        if not vectors:
            return made
        batches = [engine.predict_batch(vectors) for engine in self.engines]
        for i, vector in enumerate(vectors):
            due = self._bar_index[vector.symbol] + self.horizon
            group = [self._record(vector, batch[i]) for batch in batches]
            self._pending.setdefault(vector.symbol, deque()).append((due, group))
            made.extend(group)
        return made

    def warm_up(self, bars: Iterable[Bar]) -> None:
        """Feed history to the per-symbol feature engines without predicting, so the first live
        prediction has full feature windows (no invented predictions for the past)."""
        for bar in bars:
            self._engine(bar.symbol).update(bar)

    def _engine(self, symbol: str) -> FeatureEngine:
        fe = self._features.get(symbol)
        if fe is None:
            fe = self._features[symbol] = FeatureEngine(symbol)
        return fe

    def _record(self, vector: FeatureVector, p: Prediction) -> PredictionRecord:
        self._next_id += 1
        rec = PredictionRecord(
            id=self._next_id,
            model=p.model,
            version=p.version,
            symbol=vector.symbol,
            ts=vector.ts,
            horizon=self.horizon,
            prob_up=p.prob_up,
            direction=p.direction,
            entry=vector.close,
            features=vector.values,
            fallback_for=p.fallback_for,
        )
        self.records.append(rec)
        self.predictions += 1
        self._metrics_for(p.model, p.version).predictions += 1
        return rec

    def _score_due(self, bar: Bar, index: int) -> None:
        queue = self._pending.get(bar.symbol)
        while queue and queue[0][0] <= index:
            _, group = queue.popleft()
            for rec in group:
                rec.exit = bar.close
                rec.exit_ts = bar.ts
                rec.actual_up = bar.close > rec.entry
                self._metrics_for(rec.model, rec.version).score(rec, self.qty)
                self.scored += 1
                if self._on_scored is not None:
                    try:
                        self._on_scored(rec)
                    except Exception:
                        log.exception("shadow prediction sink failed; the tracker continues")

    # -- metrics -------------------------------------------------------------------------------
    def _metrics_for(self, name: str, version: str) -> ModelMetrics:
        m = self._metrics.get((name, version))
        if m is None:
            m = self._metrics[(name, version)] = ModelMetrics(name, version)
        return m

    def metrics(self, name: str, version: str) -> ModelMetrics:
        return self._metrics_for(name, version)

    def comparison(self) -> list[ModelMetrics]:
        """All models side by side, best hit rate first (unscored last)."""
        return sorted(
            self._metrics.values(), key=lambda m: (m.hit_rate is None, -(m.hit_rate or 0.0), m.name)
        )

    def fallbacks(self) -> dict[str, int]:
        return {engine.key: engine.fallbacks for engine in self.engines}
