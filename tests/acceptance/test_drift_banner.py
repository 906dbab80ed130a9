"""The drift banner on a real screen: another client changes the account behind Heron's back, and
the red banner with its text appears at the top of the window within the reconciliation interval.

How Heron learns of outside activity (services/orders/engine.py ``on_trade_update``,
services/reconciliation/reconciler.py ``run_cycle``, services/orders/startup.py):

- Alpaca's ``trade_updates`` stream carries every order of the account, whichever client placed it
  (Alpaca docs, "Websocket Streaming": the trade_updates example; docs/alpaca-rules.md). Heron adopts
  such an order on its first update, even when that update is already the fill, and books its fills:
  that is not drift, and the banner rightly stays hidden. Dropping only the order's first update
  (``new``) is therefore not enough to make drift: its ``fill`` still arrives and is adopted.
- Drift is a change whose updates Heron never receives (a stream outage; Alpaca does not replay
  missed updates). Then only the reconciler sees it: every ``RECONCILE_EVERY_S`` it reads the
  broker's positions and open orders and opens a critical ``position_qty`` incident for a quantity
  that differs, which HALTs trading and paints the banner red.

So the test makes the exchange drop every trade update of the outside order, places it with Heron's
own keys (``POST /v2/orders``, as another Alpaca client would), and waits for the banner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from services.orders.startup import RECONCILE_EVERY_S
from tests.acceptance.support import Display, ScreenGrabber, Terminal, colour_band, near, until
from tests.support.exchange import ExchangeProcess
from widgets import theme

pytestmark = pytest.mark.acceptance

SYMBOL = "NVDA"  # in the default watchlist, so Heron streams its prices


def _fill_behind_herons_back(exchange: ExchangeProcess) -> dict[str, Any]:
    """A market buy of 3 NVDA by another client with the same keys, its trade updates lost."""
    exchange.admin("/trade-updates", {"drop_next": 1000})
    status, order = exchange.request(
        "POST",
        "/v2/orders",
        {"symbol": SYMBOL, "qty": "3", "side": "buy", "type": "market", "time_in_force": "day"},
    )
    assert status == 200, order

    def filled() -> dict[str, Any] | None:
        _, now = exchange.request("GET", f"/v2/orders/{order['id']}")
        return now if now["status"] == "filled" else None

    done = until("the outside order filled at the exchange", filled, 20)
    exchange.admin("/trade-updates", {"drop_next": 0})  # later updates reach Heron again
    _, position = exchange.request("GET", f"/v2/positions/{SYMBOL}")
    assert position["qty"] == "3", position
    return done


def _banner_text_pixels(shot: np.ndarray[Any, Any], band: tuple[int, int], left: int, width: int) -> int:
    """Pixels in the banner's text colour inside the strip, left of the Review button (the strip's
    own 2-pixel border sits below the band and is not counted)."""
    top, bottom = band
    text_area = shot[top : bottom + 1, left : left + int(width * 0.6)]
    return int(near(text_area, theme.DOWN, 40).sum())


def test_banner_appears_when_an_outside_fill_is_missed(
    start_terminal: Callable[..., Terminal],
    exchange: ExchangeProcess,
    display: Display,
    screen: ScreenGrabber,
) -> None:
    heron = start_terminal()
    heron.wait_window()
    heron.wait_log(r"start-up reconciliation: clean", timeout=60)
    _, before = screen.grab("before")
    assert colour_band(before, theme.DRIFT_CRITICAL_BG, heron.geometry()) is None, (
        "a red strip is shown before any drift"
    )

    _fill_behind_herons_back(exchange)
    changed_at = time.monotonic()
    shots: list[str] = []

    def banner_on_screen() -> tuple[int, int] | None:
        path, shot = screen.grab("drift")
        shots.append(path.name)
        return colour_band(shot, theme.DRIFT_CRITICAL_BG, heron.geometry())

    # one cycle finds it; the second interval and the margin allow for a loaded machine
    band = until(
        f"the red drift banner on the screen (grabs in {screen.folder})",
        banner_on_screen,
        2 * RECONCILE_EVERY_S + 10,
        every=0.5,
    )
    seen_after = time.monotonic() - changed_at
    path, shot = screen.grab("banner")
    geometry = heron.geometry()
    band = colour_band(shot, theme.DRIFT_CRITICAL_BG, geometry) or band
    top, bottom = band
    assert bottom - top + 1 >= 20, f"the banner is a {bottom - top + 1}-pixel strip ({path})"
    # text, not an empty strip: the banner's words are painted in the critical colour
    assert _banner_text_pixels(shot, band, geometry.x, geometry.width) >= 300, (
        f"no text in the banner ({path})"
    )

    # Review… (the button at the banner's right end) brings the reconciliation panel forward, where
    # the differing quantity is highlighted (nowhere else in the window uses that colour)
    below = np.s_[bottom + 3 :, geometry.x : geometry.x + geometry.width]
    assert near(shot[below], theme.DIFF_BG, 2).sum() < 200, f"a differing cell is already shown ({path})"
    click_at = (geometry.x + geometry.width - 45, (top + bottom) // 2)
    display.xdotool("mousemove", str(click_at[0]), str(click_at[1]), "click", "1")

    def review_shown() -> bool:
        _, now = screen.grab("review")
        return bool(near(now[below], theme.DIFF_BG, 2).sum() >= 200)

    until(
        f"the reconciliation panel after Review (grabs in {screen.folder})",
        lambda: review_shown() or None,
        10,
    )

    # the banner's words, as the state report states the incident the banner shows
    def incident() -> dict[str, Any] | None:
        report = heron.report() or {}
        found = (report.get("reconciliation") or {}).get("open_incidents") or []
        return next((i for i in found if i.get("subject") == SYMBOL), None)

    shown = until("the incident in the state report", incident, 10)
    assert (shown["kind"], shown["severity"], shown["local"], shown["broker"]) == (
        "position_qty",
        "critical",
        "0",
        "3",
    )
    assert (heron.report() or {}).get("trading_state") == "HALTED"
    print(f"banner seen {seen_after:.1f} s after the outside fill ({len(shots)} grabs)")
