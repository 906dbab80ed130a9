"""Bar builders for shadow tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.domain.models import Bar

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def close_bars(closes: list[float], symbol: str = "AAPL") -> list[Bar]:
    out = []
    for i, c in enumerate(closes):
        d = Decimal(str(c))
        out.append(
            Bar(
                symbol,
                T0 + timedelta(minutes=i),
                d,
                d + Decimal("0.1"),
                d - Decimal("0.1"),
                d,
                Decimal(1000 + i),
            )
        )
    return out
