"""The state report (``--state-report``, docs/state-report.md): assembled from the sections of the parts
that run, rewritten while the terminal runs when it changed, and written a last time at quit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, cast

from app import lifecycle as stages
from app.context import AppContext, Services, cancel_tasks, now, spawn
from app.settings import atomic_write_text
from services.broker.status import HealthStatus
from services.domain.enums import ConnectionState, TradingState
from services.orders.report import build_state_report
from services.shadow.report import shadow_report
from services.strategies.report import strategies_report

log = logging.getLogger("heron.app")

STATE_REPORT_VERSION = 1
#: While the terminal runs the state report is rewritten (atomically) when it changed, at most this
#: often, so an operator or a monitor reads what is true now, not only what was true at quit.
REPORT_EVERY_S = 2.0


def register_report(ctx: AppContext, services: Services) -> None:
    if any(getattr(p, "services_report", False) for p in services.state_sections):
        return

    def provider() -> dict[str, Any]:
        return service_sections(ctx, services)

    provider.services_report = True  # type: ignore[attr-defined]
    services.state_sections.append(provider)


class ChartBarLike(Protocol):
    @property
    def t(self) -> int: ...  # start, epoch nanoseconds UTC
    @property
    def o(self) -> float: ...
    @property
    def h(self) -> float: ...
    @property
    def l(self) -> float: ...  # noqa: E743 - OHLC spelling
    @property
    def c(self) -> float: ...
    @property
    def v(self) -> float: ...


class ChartStoreLike(Protocol):
    @property
    def live(self) -> ChartBarLike | None: ...


class ChartLike(Protocol):
    """What the report reads of the chart panel (``widgets.chart.panel.ChartPanel``)."""

    @property
    def symbol(self) -> str: ...
    @property
    def store(self) -> ChartStoreLike: ...
    @property
    def timeframe(self) -> Any: ...  # a Timeframe (StrEnum: "5Min")

    def readout_text(self) -> str: ...


def _number(value: float) -> str:
    """A chart value as a decimal string: its shortest round-trip spelling, no exponent."""
    return format(Decimal(repr(float(value))).normalize(), "f")


def chart_section(chart: ChartLike) -> dict[str, Any]:
    """The report's ``chart`` section: the symbol and timeframe the chart shows, its newest (forming)
    bar and the readout line above the plot, as drawn now."""
    section: dict[str, Any] = {"symbol": chart.symbol, "timeframe": str(chart.timeframe),
                               "readout": chart.readout_text()}  # fmt: skip
    bar = chart.store.live
    if bar is not None:
        section["last_bar"] = {
            "t": (datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(bar.t) // 1000)).isoformat(),
            **{k: _number(getattr(bar, k)) for k in ("o", "h", "l", "c", "v")},
        }
    return section


def register_chart_report(services: Services, chart: ChartLike) -> None:
    """Add the ``chart`` section (the GUI's chart; a headless run has none)."""
    services.state_sections.append(lambda: {"chart": chart_section(chart)})


def health_status(ctx: AppContext, services: Services) -> HealthStatus | None:
    """Connection, data and trading as the status bar and the state report show them."""
    if services.watch is None:
        return None
    return services.watch.assess()


def connection_section(services: Services) -> dict[str, Any] | None:
    if services.health is None:
        return None
    streams: dict[str, str] = {}
    if services.streams is not None:
        for channel in ("stock", "crypto", "trading"):
            state = services.streams.states.get(channel)
            streams[channel] = state.value if state is not None else ConnectionState.CONNECTING.value
    return {"rest": services.health.state.value, "streams": streams}


def health_sections(ctx: AppContext, services: Services) -> dict[str, Any] | None:
    """The report's ``connection``, ``data`` and ``trading`` sections: the status bar's derivation."""
    legacy = connection_section(services)
    status = health_status(ctx, services)
    if status is None:
        return None if legacy is None else {"connection": legacy}
    sections = status.report()
    if legacy is not None:  # every stream is listed, those not running yet as connecting
        connection = sections["connection"]
        connection["rest"] = legacy["rest"]
        connection["streams"] = {**legacy["streams"], **connection.get("streams", {})}
    return sections


def service_sections(ctx: AppContext, services: Services) -> dict[str, Any]:
    """docs/state-report.md sections of the parts that run; a part that does not run has no section."""
    trading = services.trading
    report = build_state_report(
        mode=ctx.mode,
        trading_state=trading.state if trading is not None else TradingState.DISABLED,
        store=services.orders,
        health=services.connection_at_quit or health_sections(ctx, services),
        reconciler=cast(Any, services.reconciler),  # structurally a ReconcilerLike
        closing=services.engine.closer if services.engine is not None else None,
    )
    report.pop("version", None)
    report.pop("mode", None)
    account = services.engine.account if services.engine is not None else None
    if account is not None:  # the broker's account as last read (cash moves only with fills)
        report["account"] = {"cash": str(account.cash), "equity": str(account.equity)}
    if services.runner is not None:
        report["strategies"] = strategies_report(services.runner)
    if services.shadow is not None:
        report["shadow"] = shadow_report(services.shadow)
    return report


def state_report(ctx: AppContext, services: Services, *, final: bool = True) -> dict[str, Any]:
    """docs/state-report.md: sections a part does not have are omitted, never invented. ``final``: written at
    quit (false: a copy written while the terminal runs)."""
    report: dict[str, Any] = {
        "version": STATE_REPORT_VERSION,
        "mode": ctx.mode.value,
        "final": final,
        "written_at": now().isoformat(),
    }
    for provider in services.state_sections:
        try:
            report.update(provider())
        except Exception:
            log.exception("a state-report section failed; it is left out")
    return report


def write_state_report(path: Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    log.info("state report written to %s", path)


def schedule_state_report(ctx: AppContext, services: Services, path: Path) -> None:
    """Write the report at quit (its failure makes a headless run exit 1) and, until then, whenever
    it changed."""

    def write() -> None:
        try:
            write_state_report(path, state_report(ctx, services))
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            services.report_error = f"the state report could not be written to {path}: {reason}"
            log.error("%s", services.report_error)

    ctx.lifecycle.add_step(stages.WRITE_REPORTS, "state report", write)
    spawn(services, "state report", report_while_running(ctx, services, path))
    # The running copies stop first: the report written at quit is the last one.
    ctx.lifecycle.add_step(
        stages.STOP_STRATEGIES, "state report while running", lambda: cancel_tasks(services, "state report")
    )


async def report_while_running(
    ctx: AppContext, services: Services, path: Path, every: float = REPORT_EVERY_S
) -> None:
    last: str | None = None
    said: str | None = None
    while True:
        await asyncio.sleep(every)
        if not services.state_sections:
            continue  # not built yet: nothing to say beyond "starting"
        report = state_report(ctx, services, final=False)
        text = json.dumps(report, indent=2) + "\n"
        same = {k: v for k, v in report.items() if k != "written_at"}
        key = json.dumps(same, sort_keys=True, default=str)
        if key == last:
            continue
        write = asyncio.ensure_future(asyncio.to_thread(atomic_write_text, path, text))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:  # a write under way ends before the one at quit begins
            with contextlib.suppress(Exception):
                await write
            raise
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problem = f"the state report could not be written to {path}: {reason}"
            if problem != said:  # once per distinct problem; the write at quit decides the exit code
                log.warning("%s", problem)
                said = problem
            continue
        if said is not None:
            log.info("the state report is written to %s again", path)
            said = None
        last = key
