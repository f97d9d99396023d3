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
