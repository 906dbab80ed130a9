"""``--metrics-port``: the Prometheus endpoint (prometheus_client is imported only then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app import lifecycle as stages
from app.context import AppContext, Services, fail

if TYPE_CHECKING:
    from app.metrics import MetricsSample


def start_metrics(ctx: AppContext, services: Services) -> None:
    port = getattr(ctx.args, "metrics_port", None)
    if port is None:
        return
    from app.metrics import MetricsServer  # prometheus_client: only with --metrics-port

    server = MetricsServer(port, lambda: metrics_sample(services))
    try:
        server.start()
    except OSError as exc:
        fail(ctx, services, "metrics", f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror or exc}")
        return
    services.metrics = server
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "metrics", server.stop)


def metrics_sample(services: Services) -> MetricsSample:
    from app.metrics import MetricsSample

    s = MetricsSample()
    if services.streams is not None:
        s.messages_total = services.streams.messages_delivered
        s.streams = dict(services.streams.states)
    if services.latency is not None:
        s.rest_latency = {ep: st.last for ep, st in services.latency.all_stats().items()}
    if services.health is not None:
        s.rest_health = services.health.state.value
    if services.orders is not None:
        s.orders_by_status = services.orders.counts_by_status()
    if services.trading is not None:
        s.trading_state = services.trading.state
    if services.reconciler is not None:
        s.open_incidents = len(services.reconciler.open_incidents())
    if services.runner is not None:
        s.strategy_pnl = {i.name: float(i.pnl) for i in services.runner.infos()}
    if services.shadow is not None:
        s.shadow_predictions, s.shadow_scored = services.shadow.predictions, services.shadow.scored
    return s
