"""The display pace: market data reaches the screen at most :data:`DISPLAY_INTERVAL_S` apart, for
every panel in the same pass.

Batches arrive 12.5 times a second; the services (risk checks, strategies, interval bars) use each
one at once. What a person sees changes more slowly: each panel that a batch touched asks the pacer
to run its ``show`` callback (:meth:`DisplayPacer.request`), and the pacer runs all of them
together, at the earliest one interval after the previous pass. Their widget updates then land in one
repaint of the window instead of one per panel and batch: the repaint is most of what an idle window
costs. A callback reads its panel's newest state when it runs, so nothing a batch brought is dropped,
only shown up to one interval later. A TWS window refreshes its market data 4 times a second.

GUI thread only. A callback that raises is logged; the others still run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from time import monotonic

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger("heron.widgets")

#: The least time between two passes: 5 changes a second.
DISPLAY_INTERVAL_S = 0.2


class DisplayPacer(QObject):
    """Runs the requested ``show`` callbacks together, at most once per ``interval_s``."""

    def __init__(
        self,
        interval_s: float = DISPLAY_INTERVAL_S,
        *,
        clock: Callable[[], float] = monotonic,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if not interval_s >= 0:
            raise ValueError(f"interval_s must be 0 or more, not {interval_s!r}")
        self.interval_s = interval_s
        self.clock = clock
        self.passes = 0
        self._due: dict[Callable[[], None], None] = {}  # insertion-ordered set: first asked, first run
        self._last = -math.inf
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.run_due)

    def request(self, show: Callable[[], None]) -> None:
        """Run ``show`` at the next pass (once, however often it is asked for before then).

        The pass is never run inside this call: the batch that asked is still being handed to the
        other panels, and their requests join the same pass."""
        self._due[show] = None
        if not self._timer.isActive():
            wait = self._last + self.interval_s - self.clock()  # -inf before the first pass
            self._timer.start(math.ceil(wait * 1000) if wait > 0 else 0)

    def bind(self, owner: QObject, show: Callable[[], None]) -> Callable[[], None]:
        """A function that requests ``show``; the request is forgotten when ``owner`` is destroyed
        (its Qt objects are gone: there is nothing left to show)."""
        owner.destroyed.connect(lambda *_: self.cancel(show))
        return lambda: self.request(show)

    def cancel(self, show: Callable[[], None]) -> None:
        """Forget a request (its panel is going away)."""
        self._due.pop(show, None)

    def pending(self) -> bool:
        return bool(self._due)

    def run_due(self) -> None:
        """One pass: every requested callback, in the order they were first asked for."""
        self._timer.stop()
        due, self._due = self._due, {}
        if not due:
            return
        self._last = self.clock()
        self.passes += 1
        for show in due:
            try:
                show()
            except Exception:
                log.exception("showing market data failed in %s; the other panels are shown",
                              getattr(show, "__qualname__", show))  # fmt: skip
