"""The ticket's order actions besides submitting: cancel the last manual order, cancel all, flatten
all (the last two confirmed first). Mixed into :class:`widgets.order_ticket.ticket.OrderTicket`."""

from __future__ import annotations

from collections.abc import Callable

from widgets.protocols import EngineLike
from widgets.tasks import run_async


class TicketActions:
    """Needs ``engine``, ``ask``, ``last_client_order_id`` and ``_show_result`` from the ticket."""

    engine: EngineLike
    ask: Callable[[str, str], bool]
    last_client_order_id: str | None

    def _show_result(self, text: str, *, error: bool = False) -> None:  # pragma: no cover - the ticket's
        raise NotImplementedError

    def cancel_last(self) -> bool:
        cid = self.last_client_order_id
        if cid is None:
            self._show_result("no manual order to cancel yet")
            return False
        run_async(
            self.engine.cancel(cid, source="manual"),
            lambda ok, e: self._show_result(
                f"cancel {cid}: " + ("requested" if ok else f"not possible ({e or 'order is not open'})"),
                error=not ok,
            ),
        )
        return True

    def cancel_all(self) -> bool:
        if not self.ask("Cancel all orders", "Cancel EVERY open order?"):
            return False
        run_async(
            self.engine.cancel_all(source="manual"),
            lambda n, e: self._show_result(
                f"cancel all: {n} requested" if e is None else f"cancel all failed: {e}"
            ),
        )
        return True

    def flatten_all(self) -> bool:
        if not self.ask("Flatten all positions", "Close EVERY position with market orders?"):
            return False
        run_async(
            self.engine.flatten_all(source="manual"),
            lambda n, e: self._show_result(f"flatten all: {n}" if e is None else f"flatten failed: {e}"),
        )
        return True
