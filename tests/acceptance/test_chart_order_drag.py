"""Trading from the chart on a real screen: a working buy limit is drawn as a line at its price, a
person drags the line up with the mouse, confirms, and the order is replaced at the exchange
(PATCH /v2/orders/{id}, docs/alpaca-rules.md "Replace") at the dropped price on the cent (Alpaca's
sub-penny rule, docs/alpaca-rules.md "Prices"); the line is then drawn at the new price.

The order is placed by ``--script`` (through the same engine and risk gate as the ticket). The line
is found in the screen grab as the one long horizontal run of the buy colour (candles and volume bars
are narrow, the crosshair is another colour)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.acceptance.support import Display, ScreenGrabber, Terminal, near, until
from tests.support.exchange import ExchangeProcess
from widgets.theme import ChartColors

pytestmark = pytest.mark.acceptance

SYMBOL = "AAPL"  # the default watchlist's first symbol: the chart shows it at start
#: Up, a little: the line stays between the candles and where it was, so the price pane keeps its
#: range (the line is pinned into the fit: dragged past the pane's padding, the pane re-fits and the
#: line is drawn at the new price but on the same row), and the buy limit stays below the market.
DRAG_PX = 16
MIN_RUN_PX = 300
#: falling candles' pixels in the chart that say its history is drawn
MIN_CANDLE_PX = 2000


def _line_row(shot: np.ndarray[Any, Any], left: int, right: int) -> tuple[int, int] | None:
    """(row, middle column) of the longest horizontal run of the buy colour, if one is long enough."""
    mask = near(shot[:, left:right], ChartColors.up, 12)
    best: tuple[int, int, int] | None = None
    for row in np.flatnonzero(mask.sum(axis=1) >= MIN_RUN_PX):
        cols = np.flatnonzero(mask[row])
        breaks = np.flatnonzero(np.diff(cols) > 3)
        starts = np.r_[cols[0], cols[breaks + 1]]
        ends = np.r_[cols[breaks], cols[-1]]
        k = int(np.argmax(ends - starts))
        run = int(ends[k] - starts[k])
        if run >= MIN_RUN_PX and (best is None or run > best[0]):
            best = (run, int(row), left + int((starts[k] + ends[k]) // 2))
    return None if best is None else (best[1], best[2])


def _open_orders(exchange: ExchangeProcess) -> list[dict[str, Any]]:
    status, orders = exchange.request("GET", f"/v2/orders?status=open&symbols={SYMBOL}")
    assert status == 200, orders
    return [o for o in orders if o["symbol"] == SYMBOL and o["type"] == "limit"]


def test_dragging_an_order_line_replaces_the_order_at_the_exchange(
    start_terminal: Callable[..., Terminal],
    exchange: ExchangeProcess,
    display: Display,
    screen: ScreenGrabber,
    tmp_path: Path,
) -> None:
    script = tmp_path / "orders.json"
    order = {"symbol": SYMBOL, "side": "buy", "qty": "5", "type": "limit", "time_in_force": "day",
             "limit_price": {"offset_pct": "-0.3"}}  # fmt: skip
    script.write_text(json.dumps([order]))
    heron = start_terminal("--script", str(script))
    heron.wait_window()
    placed = until("the scripted limit order working at the exchange", lambda: _open_orders(exchange), 90)[0]
    price = Decimal(placed["limit_price"])
    geometry = heron.geometry()
    # the chart is the middle of the window: between the ticket and the watchlist
    left, right = geometry.x + geometry.width // 5, geometry.x + geometry.width * 3 // 5

    def line_on_screen() -> tuple[int, int] | None:
        return _line_row(screen.grab("line")[1], left, right)

    def settled_line() -> tuple[int, int] | None:
        """The line, once the history's candles are drawn and the line stays on one row between two
        grabs: the line is drawn as soon as the order works, and before the candles arrive the price
        pane spans far more dollars per pixel (a drag of DRAG_PX then crossed the market: the
        replaced order filled at once)."""
        grab = screen.grab("line")[1][:, left:right]
        if int(near(grab, ChartColors.down, 12).sum()) < MIN_CANDLE_PX:
            return None
        first = _line_row(grab, 0, right - left)
        again = line_on_screen()
        return again if first is not None and again is not None and first[0] == again[0] else None

    row, col = until(
        f"the order line on the screen among the candles (grabs in {screen.folder})",
        settled_line,
        60,
        every=0.5,
    )
    display.xdotool("mousemove", str(col), str(row))
    display.xdotool("mousedown", "1")
    for step in range(1, 9):
        display.xdotool("mousemove", str(col), str(row - DRAG_PX * step // 8))
    display.xdotool("mouseup", "1")
    # the confirmation the ticket's setting asks for (on by default): Yes
    dialog = heron.dialog("^Replace order$", timeout=20)
    # the keys go to the focused dialog, as a person's do (keys sent at a window that is not yet
    # focused are synthetic events, which Qt may drop)
    display.xdotool("windowactivate", "--sync", str(dialog))
    display.xdotool("key", "alt+y")
    until(
        "the replace confirmation closed by Alt+Y",
        lambda: dialog not in display.windows(pid=heron.proc.pid, name="^Replace order$") or None,
        20,
    )
    # the pointer off the line, as a person's hand moves on: a line under the pointer is drawn in its
    # hover colour, which is not the colour searched for
    display.xdotool("mousemove", str(col), str(max(geometry.y + 80, row - 150)))

    def replaced() -> dict[str, Any] | None:
        now = _open_orders(exchange)
        return now[0] if now and now[0]["id"] != placed["id"] else None

    try:
        new = until("the replaced order at the exchange", replaced, 30)
    except AssertionError as exc:
        _, history = exchange.request("GET", f"/v2/orders?status=all&symbols={SYMBOL}")
        raise AssertionError(f"{exc}; the exchange's {SYMBOL} orders: {history}; Heron's log ends:\n"
                             f"{heron.log_text()[-3000:]}") from None  # fmt: skip
    new_price = Decimal(new["limit_price"])
    assert new["replaces"] == placed["id"]
    assert new_price > price, f"dragged up from {price}, replaced at {new_price}"
    assert new_price == new_price.quantize(Decimal("0.01")), new_price  # on the cent

    def line_moved() -> tuple[int, int] | None:
        # above where it was; not to the pixel: a new bar may refit the price axis meanwhile
        found = line_on_screen()
        return found if found is not None and DRAG_PX // 2 <= row - found[0] <= 2 * DRAG_PX else None

    until("the line drawn at the new price", line_moved, 20, every=0.5)
