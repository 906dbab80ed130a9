"""The lab window's words for durations and a sweep's progress."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.lab.model import PointResult, SweepOutcome, SweepProgress, SweepSpec
from widgets.lab.points_model import METRIC_TITLES, best_key, metric_text, value_text
from widgets.models.common import fmt_duration


def progress_text(p: SweepProgress) -> str:
    rate = "—" if p.rate_per_s is None else f"{p.rate_per_s:,.1f} points/s"
    text = f"{p.completed:,} / {p.total:,} points · {rate} · {fmt_duration(p.eta_s)} left"
    text += f" · {p.workers} worker{'s' if p.workers != 1 else ''}"
    return text + (f" · {p.errors:,} failed" if p.errors else "")


def costs_text(spec: SweepSpec) -> str:
    """The sweep's cash and costs in a trader's words: "$100,000 cash, $0.005/share, 2 bp slippage"."""
    cash = Decimal(spec.initial_cash)
    return f"${cash:,f} cash, ${spec.commission_per_share}/share, {spec.slippage_bps} bp slippage"


def best_text(spec: SweepSpec | None, outcome: SweepOutcome, shown: Sequence[PointResult]) -> str:
    """The best point in words: the engine's best, else the best of the points ``shown``."""
    best = outcome.best
    if spec is None:
        return ""
    metric = spec.metric
    if best is None:
        ranked = [(v, p) for p in shown if (v := best_key(p, metric)) is not None]
        best = max(ranked, key=lambda vp: vp[0])[1] if ranked else None
    if best is None or best.metrics is None:
        return "No point has a figure to rank."
    params = ", ".join(f"{k}={value_text(v)}" for k, v in best.params.items() if k in spec.space)
    figure = metric_text(metric, best.metrics.get(metric))
    return f"Best: {params}, {METRIC_TITLES.get(metric, metric)} {figure}."
