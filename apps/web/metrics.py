"""``/metrics`` for Prometheus: django-prometheus' request metrics plus Rota's own series.

Rota's series are read from the database at scrape time (``RotaCollector``), so every web replica
answers the same and nothing is lost when a process restarts:

* ``rota_jobs{state, priority}``: chains by status and requested priority;
* ``rota_queue_length{group, priority}`` and ``rota_queue_wait_seconds_max{group, priority}``:
  attempts waiting for nodes, and how long the oldest has waited;
* ``rota_nodes{group, state}``: nodes by state;
* ``rota_pass_age_seconds{pass}`` and ``rota_pass_duration_seconds{pass}``: time since the last
  scheduling / reconcile pass, and how long it took (shared cache);
* ``rota_preemptions_total{reason}`` and ``rota_gpu_hours_lost_total{reason}``: attempts the
  platform suspended, and the GPU-hours of work they lost since their last checkpoint;
* ``rota_websocket_connections{endpoint}`` and ``rota_log_lines_streamed_total{endpoint}``: per
  process (``apps.core.metrics``).

Answered by ``MetricsMiddleware`` (first in ``MIDDLEWARE``) whatever the Host header — Prometheus
scrapes pods by IP — and only with ``Authorization: Bearer $ROTA_METRICS_TOKEN``; without a
configured token the endpoint does not exist (404).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db.models import Count, Min, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from apps.cluster.models import Node
from apps.core import health
from apps.core import metrics as _process_metrics  # noqa: F401 - registers the per-process series
from apps.core.priorities import Priority
from apps.experiments.choices import QueueStatus, WorkerStatus
from apps.experiments.models import Attempt, Chain
from apps.experiments.selectors import PLATFORM_SUSPENSIONS, work_lost_gpu_hours


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

        duration = GaugeMetricFamily(
            "rota_pass_duration_seconds", "How long the last completed pass took.", labels=["pass"]
        )
        for name in health.PASS_NAMES:
            seconds = health.last_pass_seconds(name)
            if seconds is not None:
                duration.add_metric([name], seconds)
        yield duration

        yield from _suspensions()


def _suspensions() -> Iterator[Metric]:
    """Preemptions by reason, and the GPU-hours their attempts lost: GPUs held × the time from the
    attempt's last checkpoint (or its start) to its end — the work its next attempt does again.
    Read from the attempts themselves (they are never deleted while their chain exists)."""
    preemptions = CounterMetricFamily(
        "rota_preemptions",
        "Attempts the platform suspended and requeued, by reason.",
        labels=["reason"],
    )
    lost = CounterMetricFamily(
        "rota_gpu_hours_lost",
        "GPU-hours of work lost by suspended attempts since their last checkpoint, by reason.",
        labels=["reason"],
    )
    counts: dict[str, int] = dict.fromkeys(PLATFORM_SUSPENSIONS, 0)
    hours: dict[str, float] = dict.fromkeys(PLATFORM_SUSPENSIONS, 0.0)
    rows = (
        Attempt.objects.filter(worker_status=WorkerStatus.SUSPENDED, suspend_reason__in=PLATFORM_SUSPENSIONS)
        .values_list("suspend_reason", "started_at", "last_checkpoint_at", "finished_at")
        .annotate(gpus=Sum("ranks__node__gpu_count"))
        .order_by()
    )
    for reason, started, checkpoint, finished, gpus in rows:
        counts[reason] += 1
        hours[reason] += work_lost_gpu_hours(
            gpus=gpus, started_at=started, last_checkpoint_at=checkpoint, finished_at=finished
        )
    for reason in PLATFORM_SUSPENSIONS:
        preemptions.add_metric([reason], counts[reason])
        lost.add_metric([reason], round(hours[reason], 6))
    yield preemptions
    yield lost


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
