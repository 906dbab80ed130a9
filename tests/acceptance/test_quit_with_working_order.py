"""Quitting with a working order asks first (issue 15: "Quitting with working orders or open positions
says what stays working at the broker, with the choice to cancel them").

A limit buy far below the market rests at the exchange: placed with Heron's own keys by another
client (``POST /v2/orders``), which Heron adopts from the ``trade_updates`` stream like any order of
the account (Alpaca docs, "Websocket Streaming": trade_updates carries every order of the account;
docs/alpaca-rules.md). The person presses Ctrl+Q; the quit dialog (widgets/quit_guard.py, a new
top-level window of Heron's process) offers "Cancel working orders and quit" (the leftmost of its
three buttons), which the test clicks. The order must be canceled at the exchange and Heron must
exit 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.acceptance.support import (
    Display,
    ScreenGrabber,
    Terminal,
    button_row,
    click,
    client_box,
    until,
)
from tests.support.exchange import ExchangeProcess

pytestmark = pytest.mark.acceptance

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

    display.xdotool("windowactivate", "--sync", str(window))
    display.xdotool("key", "ctrl+q")
    dialog = heron.dialog(r"^Quit Heron\?$")
    box = client_box(display, dialog)

    def three_buttons() -> list[Any] | None:
        return button_row(screen.grab("quit-dialog")[1], box, count=3) or None

    buttons = until(f"the quit dialog's three buttons (grabs in {screen.folder})", three_buttons, 10)
    assert heron.proc.poll() is None, "Heron quit without asking"
    click(display, *buttons[0].centre)  # Cancel working orders and quit

    try:
        code = heron.proc.wait(60)
    except Exception:
        pytest.fail(f"Heron did not exit after the choice:\n{heron.output()[-2000:]}")
    assert code == 0, heron.output()[-3000:]
    assert _open_orders(exchange) == [], "an order is still open at the exchange"
    _, after = exchange.request("GET", f"/v2/orders/{order['id']}")
    assert after["status"] == "canceled", after
    assert "quit: the 1 working order(s) are canceled before Heron stops" in heron.log_text()
