"""Prometheus metrics of every role, served at ``/metrics``.

Names follow Prometheus conventions (``dd0c_`` prefix, base units, ``_total`` for
counters). Tenant ids are not labels, since a label per tenant multiplies every
series by the number of tenants; ``DD0C_METRICS_PER_TENANT=true`` adds one counter
of webhooks per tenant for installs with few tenants. Each process serves its own
metrics (Prometheus scrapes every process); when one role runs several processes
behind one port, set ``PROMETHEUS_MULTIPROC_DIR`` and the scrape merges them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

WEBHOOKS = Counter(
    "dd0c_webhooks", "Webhook requests by provider and outcome", ["provider", "outcome"]
)
WEBHOOKS_BY_TENANT = Counter(
    "dd0c_tenant_webhooks", "Webhook requests per tenant (DD0C_METRICS_PER_TENANT)", ["tenant"]
)
WEBHOOK_BYTES = Histogram(
    "dd0c_webhook_body_bytes",
    "Size of accepted webhook bodies",
    ["provider"],
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576),
)
PROCESSING = Histogram(
    "dd0c_processing_seconds",
    "From a webhook's acceptance to its alerts decided and stored",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_EVENTS = Histogram(
    "dd0c_worker_batch_events",
    "Events per worker batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
DECISIONS = Counter("dd0c_alerts_decided", "Alerts decided, by outcome", ["outcome"])
PAGES = Counter("dd0c_pages", "Alerts that paged")
DEAD_LETTERS = Counter("dd0c_dead_letters", "Events set aside, by reason", ["reason"])
DELIVERIES = Counter(
    "dd0c_deliveries", "Delivery attempts, by destination type and outcome", ["type", "outcome"]
)
DELIVERY_SECONDS = Histogram(
    "dd0c_delivery_seconds",
    "Time of one delivery attempt",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RuntimeCollector(Collector):
    """Gauges read at scrape time: queue depth and oldest age, outbox backlog,
    Redis and worker health, database connections in use."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            values = self._read()
        except Exception:  # a scrape must answer even when the database does not
            values = {"dd0c_up": 0.0}
        for name, value in values.items():
            yield GaugeMetricFamily(name, _HELP.get(name, name), value=value)


_HELP = {
    "dd0c_up": "1 when the process reads its database",
    "dd0c_queue_messages": "Events waiting in the ingest queue",
    "dd0c_queue_oldest_age_seconds": "Age of the oldest waiting event (the queue lag)",
    "dd0c_redis_healthy": "1 while Redis answers (0: limits and breakers in process memory)",
    "dd0c_db_connections_in_use": "Database connections checked out of this process's pool",
}


def scrape(runtime_gauges: Collector | None) -> tuple[bytes, str]:
    """The exposition text for ``/metrics``."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        if runtime_gauges is not None:
            registry.register(runtime_gauges)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    text = generate_latest(REGISTRY)
    if runtime_gauges is not None:
        one = CollectorRegistry()
        one.register(runtime_gauges)
        text += generate_latest(one)
    return text, CONTENT_TYPE_LATEST
