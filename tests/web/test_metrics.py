"""/metrics: Rota's series with exact values after a scripted workload, django-prometheus' request
metrics, bearer-token protection, and any Host header (Prometheus scrapes pod IPs)."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from apps.core import health
from tests.factories import UserFactory

TOKEN = "metrics-token-for-tests"
POD_IP = "10.42.0.9:8000"


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def rota(samples: dict, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


@pytest.fixture
def metrics_on(settings):
    settings.ROTA_METRICS_TOKEN = TOKEN


@pytest.mark.usefixtures("metrics_on")
def test_metrics_have_rota_series_with_exact_values_after_a_workload(cluster, submit):
    user = UserFactory(username="mia")
    submit(user, name="big", nodes=3, priority=10)  # scheduled on 3 of the 4 nodes
    submit(user, name="waits", nodes=2, priority=10)  # only 1 node left: queued
    health.record_pass("scheduler")
    samples = scrape(Client(HTTP_HOST=POD_IP))

    assert rota(samples, "rota_jobs") == {
        (("priority", "NORMAL"), ("state", "starting")): 1.0,
        (("priority", "NORMAL"), ("state", "waiting")): 1.0,
    }
    assert rota(samples, "rota_queue_length") == {(("group", "training"), ("priority", "NORMAL")): 1.0}
    waited = rota(samples, "rota_queue_wait_seconds_max")[(("group", "training"), ("priority", "NORMAL"))]
    assert 0 <= waited < 60
    assert rota(samples, "rota_nodes") == {(("group", "training"), ("state", "ready")): 4.0}
    assert 0 <= rota(samples, "rota_pass_age_seconds")[(("pass", "scheduler"),)] < 60
    # django-prometheus' own request metrics are there too.
    assert any(name.startswith("django_http_requests") for name, _ in samples)


@pytest.mark.django_db
@pytest.mark.usefixtures("metrics_on")
def test_metrics_need_the_bearer_token():
    client = Client(HTTP_HOST=POD_IP)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_metrics_do_not_exist_without_a_configured_token(settings):
    settings.ROTA_METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.usefixtures("metrics_on")
def test_preemptions_gpu_hours_lost_and_pass_durations(cluster, submit):
    from datetime import timedelta

    from django.utils import timezone

    from apps.experiments import lifecycle
    from apps.experiments.choices import RankStatus, SuspendReason
    from apps.experiments.models import Attempt
    from apps.web.metrics import PLATFORM_SUSPENSIONS

    user = UserFactory(username="noa")
    t0 = timezone.now() - timedelta(hours=5)

    def suspend(chain, reason, *, ran_hours: float, checkpoint_hours: float | None):
        attempt = Attempt.objects.get(pk=chain.latest_attempt_id)
        for rank in attempt.ranks.all():
            lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
        assert lifecycle.attempt_mark_running(attempt_id=attempt.pk)
        assert lifecycle.attempt_mark_suspended(attempt_id=attempt.pk, reason=reason) is not None
        checkpoint = t0 + timedelta(hours=checkpoint_hours) if checkpoint_hours is not None else None
        Attempt.objects.filter(pk=attempt.pk).update(
            started_at=t0, last_checkpoint_at=checkpoint, finished_at=t0 + timedelta(hours=ran_hours)
        )

    big = submit(user, name="big", nodes=2)  # 2 nodes × 8 GPUs
    suspend(big, SuspendReason.PREEMPTED, ran_hours=3, checkpoint_hours=2.5)  # 16 GPUs × 0.5 h lost
    small = submit(user, name="small", nodes=1)  # 8 GPUs, never checkpointed
    suspend(small, SuspendReason.NODE_NOT_READY, ran_hours=0.25, checkpoint_hours=None)  # 8 × 0.25 h
    mine = submit(user, name="mine", nodes=1)
    suspend(mine, SuspendReason.USER, ran_hours=1, checkpoint_hours=None)  # a person's: not counted
    health.record_pass("scheduler", 0.125)
    health.record_pass("launcher", 2.5)

    samples = scrape(Client(HTTP_HOST=POD_IP))
    expected = dict.fromkeys(PLATFORM_SUSPENSIONS, 0.0)
    assert rota(samples, "rota_preemptions_total") == {
        (("reason", r),): {"preempted": 1.0, "node_not_ready": 1.0}.get(r, v) for r, v in expected.items()
    }
    assert rota(samples, "rota_gpu_hours_lost_total") == {
        (("reason", r),): {"preempted": 8.0, "node_not_ready": 2.0}.get(r, v) for r, v in expected.items()
    }
    assert rota(samples, "rota_pass_duration_seconds") == {
        (("pass", "scheduler"),): 0.125,
        (("pass", "launcher"),): 2.5,
    }
