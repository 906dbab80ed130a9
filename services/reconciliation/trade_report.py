"""The per-symbol trade report (CSV) from Heron's own fills."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from services.orders.store import OrderStore

COLUMNS = ["symbol", "buys", "sells", "volume", "buy_notional", "sell_notional", "position", "realized_pl"]


def plain(v: Decimal) -> str:
    """A Decimal as plain text without trailing zeros (``1.50`` -> ``1.5``, ``2.0`` -> ``2``)."""
    text = format(v, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def export_trade_report(store: OrderStore, path: Path) -> int:
    """CSV per symbol: buys, sells, volume, realized P&L (from Heron's fills). Returns rows."""
    rows = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for sym in sorted(store.positions):
            p = store.positions[sym]
            w.writerow(
                [
                    sym,
                    plain(p.bought),
                    plain(p.sold),
                    plain(p.bought + p.sold),
                    plain(p.buy_notional),
                    plain(p.sell_notional),
                    plain(p.qty),
                    plain(p.realized_pl),
                ]
            )
            rows += 1
    return rows
