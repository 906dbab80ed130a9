"""What ``main.py`` measured and started before the composition root ran. Standard library only:
main.py imports this before anything heavy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.local_exchange import LocalExchangeLauncher


@dataclass
class Launch:
    """Handed to :func:`app.run`; every field optional (tests and previews leave them unset)."""

    #: ``time.monotonic()`` at the top of main.py, for the "window shown/usable after" log lines.
    started_monotonic: float | None = None
    #: Seconds of the start-up import lanes: window modules, service modules (worker), both done.
    import_lanes: tuple[float, float | None, float] | None = None
    #: The local exchange child main.py started before the imports (adopted if it fits the run).
    early_exchange: LocalExchangeLauncher | None = None
