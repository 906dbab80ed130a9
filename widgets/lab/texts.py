"""The lab window's words for durations and a sweep's progress."""

from __future__ import annotations

from decimal import Decimal

from services.lab.model import SweepProgress, SweepSpec


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_text(p: SweepProgress) -> str:
    rate = "—" if p.rate_per_s is None else f"{p.rate_per_s:,.1f} points/s"
    text = f"{p.completed:,} / {p.total:,} points · {rate} · {duration_text(p.eta_s)} left"
    text += f" · {p.workers} worker{'s' if p.workers != 1 else ''}"
    return text + (f" · {p.errors:,} failed" if p.errors else "")


def costs_text(spec: SweepSpec) -> str:
    """The sweep's cash and costs in a trader's words: "$100,000 cash, $0.005/share, 2 bp slippage"."""
    cash = Decimal(spec.initial_cash)
    return f"${cash:,f} cash, ${spec.commission_per_share}/share, {spec.slippage_bps} bp slippage"
