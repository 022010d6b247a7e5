"""Connector health in ``/metrics``: gauges read from the database when Prometheus scrapes (the same
figures as ``GET /api/v1/connectors/{id}/health``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from leadflow.connectors import manage
from leadflow.kernel.context import AppContext, Slot


class HealthCollector(Collector):
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["connector", "vendor"]
        families = {
            "success_rate": GaugeMetricFamily(
                "leadflow_connector_success_rate",
                "Records synced / settled over the last hour",
                labels=labels,
            ),
            "backlog": GaugeMetricFamily(
                "leadflow_connector_backlog", "Records waiting to be synced", labels=labels
            ),
            "dead_letters": GaugeMetricFamily(
                "leadflow_connector_dead_letters", "Records given up on", labels=labels
            ),
            "lag_p50": GaugeMetricFamily(
                "leadflow_connector_lag_p50_seconds", "Change → vendor, median", labels=labels
            ),
            "lag_p99": GaugeMetricFamily(
                "leadflow_connector_lag_p99_seconds", "Change → vendor, p99", labels=labels
            ),
            "alerting": GaugeMetricFamily(
                "leadflow_connector_alerting",
                "1 while the success rate is under the threshold",
                labels=labels,
            ),
        }
        try:
            found = manage.health_all(self.ctx)
        except Exception:  # a scrape must not fail because the database is busy
            found = []
        for health in found:
            names = [str(health["connector_id"]), str(health.get("vendor", ""))]
            if health["success_rate"] is not None:
                families["success_rate"].add_metric(names, float(health["success_rate"]))
            families["backlog"].add_metric(names, float(health["backlog"]))
            families["dead_letters"].add_metric(names, float(health["dead_letters"]))
            lag = health["lag_ms"]
            if lag["p50"] is not None:
                families["lag_p50"].add_metric(names, lag["p50"] / 1000)
                families["lag_p99"].add_metric(names, lag["p99"] / 1000)
            families["alerting"].add_metric(names, 1.0 if health["alerting"] else 0.0)
        yield from families.values()


def _register(ctx: AppContext) -> HealthCollector:
    collector = HealthCollector(ctx)
    ctx.metrics.registry.register(collector)
    return collector


_COLLECTOR: Slot[HealthCollector] = Slot("connectors.metrics", _register)


def register(ctx: AppContext) -> None:
    """Add the connector gauges to this context's registry (once)."""
    ctx.get(_COLLECTOR)
