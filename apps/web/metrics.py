"""``/metrics`` for Prometheus: django-prometheus' request metrics plus Rota's own series.

Rota's series are read from the database at scrape time (``RotaCollector``), so every web replica
answers the same and nothing is lost when a process restarts:

* ``rota_jobs{state, priority}``: chains by status and requested priority;
* ``rota_queue_length{group, priority}`` and ``rota_queue_wait_seconds_max{group, priority}``:
  attempts waiting for nodes, and how long the oldest has waited;
* ``rota_nodes{group, state}``: nodes by state;
* ``rota_pass_age_seconds{pass}``: time since the last scheduling / reconcile pass.

Answered by ``MetricsMiddleware`` (first in ``MIDDLEWARE``) whatever the Host header — Prometheus
scrapes pods by IP — and only with ``Authorization: Bearer $ROTA_METRICS_TOKEN``; without a
configured token the endpoint does not exist (404).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from apps.cluster.models import Node
from apps.core import health
from apps.core.priorities import Priority
from apps.experiments.choices import QueueStatus
from apps.experiments.models import Attempt, Chain


def _priority_name(value: int | None) -> str:
    if value is None:
        return "none"
    try:
        return Priority(value).name
    except ValueError:
        return str(value)


class RotaCollector(Collector):
    """Rota's own series, computed from the database at each scrape (four grouped queries)."""

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "rota_jobs", "Jobs (chains) by status and requested priority.", labels=["state", "priority"]
        )
        for row in Chain.objects.values("status", "priority").annotate(n=Count("id")).order_by():
            jobs.add_metric([row["status"], _priority_name(row["priority"])], row["n"])
        yield jobs

        length = GaugeMetricFamily(
            "rota_queue_length",
            "Attempts waiting for nodes, per node group and priority.",
            labels=["group", "priority"],
        )
        wait = GaugeMetricFamily(
            "rota_queue_wait_seconds_max",
            "How long the oldest waiting attempt has waited, per node group and priority.",
            labels=["group", "priority"],
        )
        now = time.time()
        queued = (
            Attempt.objects.filter(queue_status=QueueStatus.QUEUED)
            .values("chain__node_group__name", "priority")
            .annotate(n=Count("id"), oldest=Min("created_at"))
            .order_by()
        )
        for row in queued:
            labels = [row["chain__node_group__name"], _priority_name(row["priority"])]
            length.add_metric(labels, row["n"])
            wait.add_metric(labels, max(0.0, now - row["oldest"].timestamp()))
        yield length
        yield wait

        nodes = GaugeMetricFamily("rota_nodes", "Nodes by node group and state.", labels=["group", "state"])
        for row in Node.objects.values("group__name", "state").annotate(n=Count("id")).order_by():
            nodes.add_metric([row["group__name"], row["state"]], row["n"])
        yield nodes

        age = GaugeMetricFamily("rota_pass_age_seconds", "Seconds since the last completed pass.", labels=["pass"])
        for name in health.PASS_NAMES:
            at = health.last_pass_at(name)
            if at is not None:
                age.add_metric([name], max(0.0, now - at))
        yield age


_rota_registry = CollectorRegistry(auto_describe=False)
_rota_registry.register(RotaCollector())


def metrics_text() -> bytes:
    """The exposition: the process registry (django-prometheus, Python) then Rota's series."""
    return generate_latest(REGISTRY) + generate_latest(_rota_registry)


class MetricsMiddleware:
    """Answers ``GET /metrics`` (bearer token) before host checks and HTTPS redirects."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != "/metrics" or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        token = str(getattr(settings, "ROTA_METRICS_TOKEN", "") or "")
        if not token:
            return HttpResponse("Not found: set ROTA_METRICS_TOKEN to enable /metrics.\n", status=404)
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("Send Authorization: Bearer <ROTA_METRICS_TOKEN>.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
