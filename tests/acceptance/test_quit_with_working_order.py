"""Quitting with a working order asks first (issue 15: "Quitting with working orders or open positions
says what stays working at the broker, with the choice to cancel them").

A limit buy far below the market rests at the exchange: placed with Heron's own keys by another
client (``POST /v2/orders``), which Heron adopts from the ``trade_updates`` stream like any order of
the account (Alpaca docs, "Websocket Streaming": trade_updates carries every order of the account;
docs/alpaca-rules.md). The person clicks the window's close button in the title bar: the quit dialog
(widgets/quit_guard.py, a new top-level window of Heron's process) appears, and "Don't quit" (its
rightmost button) leaves Heron running and the order working. Then Ctrl+Q: the dialog again, and
"Cancel working orders and quit" (its leftmost button). The order must be canceled at the exchange
and Heron must exit 0.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.acceptance.support import (
    Box,
    Display,
    ScreenGrabber,
    Terminal,
    button_row,
    click,
    client_box,
    holds_for,
    until,
)
from tests.support.exchange import ExchangeProcess

pytestmark = pytest.mark.acceptance

QUIT_TITLE = r"^Quit Heron\?$"
SYMBOL = "AAPL"  # the local exchange's AAPL trades near 178: a limit buy at 100 rests


def _resting_order(exchange: ExchangeProcess) -> dict[str, Any]:
    status, order = exchange.request(
        "POST",
        "/v2/orders",
        {"symbol": SYMBOL, "qty": "1", "side": "buy", "type": "limit", "limit_price": "100",
         "time_in_force": "gtc"},
    )  # fmt: skip
    assert status == 200, order
    assert order["status"] in ("new", "accepted", "pending_new"), order
    return order


def _open_orders(exchange: ExchangeProcess) -> list[dict[str, Any]]:
    status, orders = exchange.request("GET", "/v2/orders?status=open")
    assert status == 200, orders
    return list(orders)


def _quit_buttons(heron: Terminal, display: Display, screen: ScreenGrabber) -> list[Box]:
    """The quit dialog's three buttons, left to right, once it is on the screen."""
    box = client_box(display, heron.dialog(QUIT_TITLE))

    def three_buttons() -> list[Box] | None:
        return button_row(screen.grab("quit-dialog")[1], box, count=3) or None

    buttons = until(f"the quit dialog's three buttons (grabs in {screen.folder})", three_buttons, 10)
    assert heron.proc.poll() is None, "Heron quit without asking"
    return buttons


def test_quit_with_a_working_order_asks_and_cancels_it(
    start_terminal: Callable[..., Terminal],
    exchange: ExchangeProcess,
    display: Display,
    screen: ScreenGrabber,
) -> None:
    heron = start_terminal()
    window = heron.wait_window()
    heron.wait_log(r"start-up reconciliation: clean", timeout=60)
    order = _resting_order(exchange)

    def known_to_heron() -> bool | None:
        held = ((heron.report() or {}).get("orders") or {}).get("open") or []
        return any(o.get("id") == order["id"] for o in held) or None

    until("the outside order among Heron's open orders (state report)", known_to_heron, 20)

    # the window's close button in the title bar (openbox draws it at the frame's top right, above
    # the client area): the dialog, and Don't quit (the rightmost button) keeps everything
    main = client_box(display, window)
    click(display, main.right - 8, main.top - 10)
    buttons = _quit_buttons(heron, display, screen)
    click(display, *buttons[2].centre)  # Don't quit
    until(
        "the quit dialog closed", lambda: not display.windows(pid=heron.proc.pid, name=QUIT_TITLE) or None, 10
    )
    holds_for(
        "Heron keeps running after Don't quit", lambda: None if heron.proc.poll() is None else "it quit", 1
    )
    assert [o["id"] for o in _open_orders(exchange)] == [order["id"]]

    # Ctrl+Q: the dialog again, and Cancel working orders and quit (the leftmost button)
    display.xdotool("windowactivate", "--sync", str(window))
    display.xdotool("key", "ctrl+q")
    buttons = _quit_buttons(heron, display, screen)
    click(display, *buttons[0].centre)

    try:
        code = heron.proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Heron did not exit after the choice:\n{heron.output()[-2000:]}")
    assert code == 0, heron.output()[-3000:]
    assert _open_orders(exchange) == [], "an order is still open at the exchange"
    _, after = exchange.request("GET", f"/v2/orders/{order['id']}")
    assert after["status"] == "canceled", after
    assert "quit: the 1 working order(s) are canceled before Heron stops" in heron.log_text()
