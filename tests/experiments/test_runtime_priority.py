"""The job changes its own priority (HAI's ``set_priority``): the runtime endpoint and ``rota.job``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as account_services
from apps.experiments import lifecycle
from apps.experiments.choices import WorkerStatus
from apps.experiments.models import Chain
from tests.factories import UserFactory

CLIENT = Path(__file__).resolve().parents[2] / "client"


def job_client(chain: Chain) -> APIClient:
    issued = account_services.token_create_for_attempt(user=chain.owner, attempt_id=chain.latest_attempt_id)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    return client


@pytest.mark.django_db
def test_a_job_sets_its_own_chains_priority_by_name_or_number(cluster, submit, user):
    chain = submit(user, priority=10)
    other = submit(user, priority=10)
    response = job_client(chain).post("/api/v1/job/priority/", {"priority": "HIGH"}, format="json")
    assert (response.status_code, response.json()) == (200, {"priority": 30})
    chain.refresh_from_db()
    other.refresh_from_db()
    assert (chain.priority, other.priority) == (30, 10)  # its own chain only


@pytest.mark.django_db
def test_a_job_priority_change_follows_the_owners_rules(cluster, submit):
    ext = UserFactory(username="ext", role="external")
    chain = submit(ext, priority="LOW")
    response = job_client(chain).post("/api/v1/job/priority/", {"priority": 50}, format="json")
    assert response.status_code == 400
    assert "External users" in response.json()["error"]["message"]
    chain.refresh_from_db()
    assert chain.priority == 0


@pytest.mark.django_db
def test_a_finished_attempt_cannot_change_priority(cluster, submit, user):
    chain = submit(user)
    client = job_client(chain)
    chain.refresh_from_db()
    lifecycle.attempt_mark_finished(attempt_id=chain.latest_attempt_id, status=WorkerStatus.STOPPED)
    response = client.post("/api/v1/job/priority/", {"priority": "HIGH"}, format="json")
    # the job token is revoked when its attempt ends
    assert response.status_code == 401
    chain.refresh_from_db()
    assert chain.priority == 10


def test_rota_job_has_hais_call_names_and_they_are_no_ops_outside_the_platform():
    script = (
        "from rota import job as hfai_client\n"
        "hfai_client.set_priority(hfai_client.EXP_PRIORITY.HIGH)\n"
        "hfai_client.disable_warn(hfai_client.WARN_TYPE.LOG | hfai_client.WARN_TYPE.INTERRUPT)\n"
        "hfai_client.set_watchdog_time(600)\n"
        "print(hfai_client.get_whole_life_state(), hfai_client.receive_suspend_command())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env={"PYTHONPATH": str(CLIENT)}, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "0 False", "")


def test_rota_job_set_priority_reaches_the_platform(live_server, cluster, submit, user):
    chain = submit(user, priority=10)
    issued = account_services.token_create_for_attempt(user=user, attempt_id=chain.latest_attempt_id)
    result = subprocess.run(
        [sys.executable, "-c", "from rota import job; job.set_priority('VERY_HIGH')"],
        env={"PYTHONPATH": str(CLIENT), "ROTA_API_URL": live_server.url, "ROTA_TASK_TOKEN": issued.raw},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    chain.refresh_from_db()
    assert chain.priority == 40
