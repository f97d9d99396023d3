"""Experiments API: submit, list with filters and constant queries, detail, actions, permission suite."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts import services as account_services
from apps.experiments import lifecycle
from apps.experiments.choices import WorkerStatus
from apps.experiments.models import Attempt, Chain
from apps.logs.store import get_log_store
from tests.factories import UserFactory
from tests.permissions import Endpoint, call, db_state


def body(workspace, **kw):
    values = {
        "name": "api-job",
        "workspace": str(workspace),
        "entrypoint": "train.py",
        "group": "training",
        "nodes": 1,
        "priority": "NORMAL",
    }
    values.update(kw)
    return values


def test_submit_and_detail(cluster, api, workspace):
    response = api.post("/api/v1/experiments/", body(workspace, tags=["x"], parameters=["--lr", "0.1"]), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["name"], data["status"], data["nodes"], data["priority_name"]) == ("api-job", "starting", 1, "NORMAL")
    assert data["parameters"] == ["--lr", "0.1"]
    assert len(data["attempts"]) == 1 and len(data["attempts"][0]["ranks"]) == 1
    by_name = api.get("/api/v1/experiments/api-job/").json()
    assert by_name["id"] == data["id"]


def test_submit_takes_an_expected_run_time_in_seconds(cluster, api, workspace):
    response = api.post("/api/v1/experiments/", body(workspace, run_estimate_seconds=6 * 3600), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["run_estimate_seconds"] == 6 * 3600
    assert Chain.objects.get().run_estimate_seconds == 6 * 3600
    other = api.post("/api/v1/experiments/", body(workspace, name="no-estimate"), format="json").json()
    assert other["run_estimate_seconds"] is None


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (0, "greater than or equal to 60"),
        (-3600, "greater than or equal to 60"),
        (30 * 86400 + 1, "less than or equal to 2592000"),
        ("six hours", "A valid integer is required"),
    ],
)
def test_a_bad_expected_run_time_is_400_naming_the_field(cluster, api, workspace, value, needle):
    response = api.post("/api/v1/experiments/", body(workspace, run_estimate_seconds=value), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert needle in " ".join(error["fields"]["run_estimate_seconds"])
    assert not Chain.objects.exists()


def test_submit_errors_name_the_field(cluster, api, workspace):
    response = api.post("/api/v1/experiments/", body(workspace, group="nope"), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "group" in error["fields"] and "Unknown node group" in error["message"]
    response = api.post("/api/v1/experiments/", {"name": "x"}, format="json")
    assert set(response.json()["error"]["fields"]) >= {"workspace", "entrypoint", "group"}
    assert not Chain.objects.exists()


def test_submit_above_the_quota_ceiling_is_refused_with_the_levels_that_fit(cluster, api, user, workspace):
    cluster.set_quota(user, 50, 0)
    response = api.post("/api/v1/experiments/", body(workspace, priority="EXTREME_HIGH"), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "infeasible"
    assert error["message"].startswith("Needs 1 node but alice's quota in 'training' at EXTREME_HIGH is 0 nodes")
    assert error["message"].endswith(
        "Levels with enough quota: VERY_HIGH (4), HIGH (4), ABOVE_NORMAL (4), NORMAL (4), LOW (4)."
    )
    assert error["fields"] == {"priority": [error["message"]]}
    assert not Chain.objects.exists()


def test_duplicate_name_is_409(cluster, api, workspace):
    assert api.post("/api/v1/experiments/", body(workspace), format="json").status_code == 201
    response = api.post("/api/v1/experiments/", body(workspace), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"]["name"]


def test_list_filters_and_pagination(cluster, api, workspace, submit, user):
    submit(user, name="alpha", tags=["vision"])
    beta = submit(user, name="beta", tags=["nlp", "big"])
    api.post(f"/api/v1/experiments/{beta.pk}/star/")
    api.post(f"/api/v1/experiments/{beta.pk}/stop/")
    lifecycle.attempt_mark_finished(
        attempt_id=beta.latest_attempt_id, status=WorkerStatus.STOPPED
    )  # the launcher confirms
    names = lambda q: [r["name"] for r in api.get(f"/api/v1/experiments/{q}").json()["results"]]  # noqa: E731
    assert names("") == ["beta", "alpha"]
    assert names("?status=finished") == ["beta"]
    assert names("?status=active") == ["alpha"]
    assert names("?tag=nlp,big") == ["beta"]
    assert names("?tag=nlp,vision") == []
    assert names("?starred=true") == ["beta"]
    assert names("?name=alp") == ["alpha"]
    assert names("?ordering=name") == ["alpha", "beta"]
    assert names("?priority=NORMAL") == ["beta", "alpha"]
    assert names("?priority=HIGH") == []
    page = api.get("/api/v1/experiments/?page_size=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]


def test_list_uses_constant_queries(cluster, api, submit, user):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get("/api/v1/experiments/").status_code == 200
        return len(ctx.captured_queries)

    submit(user, tags=["a"])
    count()  # warm-up: the first request records the token's last use
    few = count()
    for i in range(8):
        submit(user, tags=["a", f"t{i}"])
    assert count() == few


def test_detail_uses_constant_queries(cluster, api, submit, user):
    chain = submit(user, nodes=1)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(f"/api/v1/experiments/{chain.pk}/").status_code == 200
        return len(ctx.captured_queries)

    count()  # warm-up: the first request records the token's last use
    few = count()
    bigger = submit(user, nodes=4, priority="HIGH")
    with CaptureQueriesContext(connection) as ctx:
        api.get(f"/api/v1/experiments/{bigger.pk}/")
    assert len(ctx.captured_queries) == few


def test_suspend_resume_through_api(cluster, api, submit, user):
    chain = submit(user)
    response = api.post(f"/api/v1/experiments/{chain.pk}/suspend/")
    assert response.status_code == 200
    assert response.json()["status"] == "suspending"
    assert api.post(f"/api/v1/experiments/{chain.pk}/resume/").status_code == 409


def test_priority_rate_limit_is_429(cluster, api, submit, user):
    chain = submit(user)
    assert api.post(f"/api/v1/experiments/{chain.pk}/priority/", {"priority": "HIGH"}, format="json").status_code == 200
    response = api.post(f"/api/v1/experiments/{chain.pk}/priority/", {"priority": "LOW"}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"


def test_quota_shows_usage(cluster, api, submit, user):
    submit(user, nodes=2, priority="NORMAL")
    rows = {(r["group"], r["priority_name"]): r for r in api.get("/api/v1/quota/").json()["node"]}
    assert rows[("training", "NORMAL")]["used"] == 2
    assert rows[("training", "NORMAL")]["quota"] == 4


EXPERIMENT_ENDPOINTS = [
    Endpoint("exp-list", "GET", lambda c: "/api/v1/experiments/"),
    Endpoint(
        "exp-submit",
        "POST",
        lambda c: "/api/v1/experiments/",
        lambda c: body(c["workspace"], name="perm-new"),
        ok_status=201,
    ),
    Endpoint("exp-detail", "GET", lambda c: f"/api/v1/experiments/{c['chain'].pk}/", owner_scoped=True),
    Endpoint("exp-stop", "POST", lambda c: f"/api/v1/experiments/{c['chain'].pk}/stop/", owner_scoped=True),
    Endpoint("exp-suspend", "POST", lambda c: f"/api/v1/experiments/{c['chain'].pk}/suspend/", owner_scoped=True),
    Endpoint(
        "exp-resume", "POST", lambda c: f"/api/v1/experiments/{c['chain'].pk}/resume/", owner_scoped=True, ok_status=409
    ),
    Endpoint(
        "exp-tag", "POST", lambda c: f"/api/v1/experiments/{c['chain'].pk}/tags/", {"tag": "t"}, owner_scoped=True
    ),
    Endpoint("exp-untag", "DELETE", lambda c: f"/api/v1/experiments/{c['chain'].pk}/tags/?tag=t", owner_scoped=True),
    Endpoint("exp-star", "POST", lambda c: f"/api/v1/experiments/{c['chain'].pk}/star/", owner_scoped=True),
    Endpoint(
        "exp-priority",
        "POST",
        lambda c: f"/api/v1/experiments/{c['chain'].pk}/priority/",
        {"priority": "HIGH"},
        owner_scoped=True,
    ),
    Endpoint(
        "exp-share",
        "POST",
        lambda c: f"/api/v1/experiments/{c['chain'].pk}/share/",
        {"shared": False},
        owner_scoped=True,
    ),
    Endpoint("exp-logs", "GET", lambda c: f"/api/v1/experiments/{c['chain'].pk}/logs/", owner_scoped=True),
    Endpoint(
        "exp-log-search", "GET", lambda c: f"/api/v1/experiments/{c['chain'].pk}/logs/search/?q=step", owner_scoped=True
    ),
    Endpoint(
        "exp-log-download", "GET", lambda c: f"/api/v1/experiments/{c['chain'].pk}/logs/download/", owner_scoped=True
    ),
    Endpoint("exp-metrics", "GET", lambda c: f"/api/v1/experiments/{c['chain'].pk}/metrics/", owner_scoped=True),
]

# The job runtime API (``rota.job``): a job's token acts on its own attempt; an ordinary token names
# one of its owner's attempts with ``?attempt=`` (``apps/experiments/api/runtime.py``).
JOB_ENDPOINTS = [
    Endpoint("job-status", "GET", lambda c: "/api/v1/job/status/"),
    Endpoint("job-state", "POST", lambda c: "/api/v1/job/whole-life-state/", {"whole_life_state": 7}),
    Endpoint("job-checkpoint", "POST", lambda c: "/api/v1/job/checkpoint/", {}),
    Endpoint("job-go-suspend", "POST", lambda c: "/api/v1/job/go-suspend/", {"rank": 0}),
    Endpoint("job-watchdog", "POST", lambda c: "/api/v1/job/watchdog/", {"seconds": 600}),
    Endpoint(
        "job-metrics", "POST", lambda c: "/api/v1/job/metrics/", {"step": 1, "values": {"loss": 0.5}}, ok_status=201
    ),
    Endpoint("job-priority", "POST", lambda c: "/api/v1/job/priority/", {"priority": "HIGH"}),
]


@pytest.fixture
def pctx(cluster, submit, workspace, make_client, settings, tmp_path):
    settings.ROTA_LOG_ROOT = tmp_path / "perm-logs"
    get_log_store.cache_clear()
    owner = UserFactory(username="powner")
    intruder = UserFactory(username="pintruder")
    admin = UserFactory(username="padmin", groups=["root"])
    chain = submit(owner, name="perm-chain")
    get_log_store().append_lines(str(chain.pk), chain.latest_attempt_id, 0, ["step 1", "step 2"])
    yield {
        "chain": chain,
        "workspace": workspace,
        "anonymous": make_client(None),
        "owner": make_client(owner),
        "intruder": make_client(intruder),
        "intruder_user": intruder,
        "admin": make_client(admin),
    }
    get_log_store.cache_clear()


def job_token_client(chain: Chain) -> APIClient:
    issued = account_services.token_create_for_attempt(user=chain.owner, attempt_id=chain.latest_attempt_id)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    return client


def for_attempt(endpoint: Endpoint, attempt_id: int) -> Endpoint:
    """The same call, naming the attempt with ``?attempt=`` (how an ordinary token picks one)."""
    return dataclasses.replace(endpoint, url=lambda c: f"{endpoint.url(c)}?attempt={attempt_id}")


def attempt_rows(chain: Chain) -> list[tuple]:
    return list(Attempt.objects.filter(chain=chain).order_by("pk").values_list())


@pytest.mark.parametrize("endpoint", EXPERIMENT_ENDPOINTS, ids=[e.name for e in EXPERIMENT_ENDPOINTS])
def test_experiment_permissions(pctx, endpoint):
    before = db_state()
    assert call(pctx["anonymous"], endpoint, pctx).status_code == 401
    assert db_state() == before
    if endpoint.owner_scoped:
        response = call(pctx["intruder"], endpoint, pctx)
        assert response.status_code == 404, response.content
        assert db_state() == before
    response = call(pctx["owner"], endpoint, pctx)
    assert response.status_code == endpoint.ok_status, response.content


@pytest.mark.parametrize(
    "endpoint",
    [e for e in EXPERIMENT_ENDPOINTS if e.owner_scoped and e.method != "GET"],
    ids=[e.name for e in EXPERIMENT_ENDPOINTS if e.owner_scoped and e.method != "GET"],
)
def test_admin_may_act_on_any_experiment(pctx, endpoint):
    assert call(pctx["admin"], endpoint, pctx).status_code == endpoint.ok_status


@pytest.mark.parametrize("endpoint", EXPERIMENT_ENDPOINTS, ids=[e.name for e in EXPERIMENT_ENDPOINTS])
def test_a_job_token_may_not_call_the_experiments_api(pctx, endpoint):
    job = job_token_client(pctx["chain"])
    before = db_state()
    response = call(job, endpoint, pctx)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["message"] == "Job tokens may only call the job runtime API."
    assert db_state() == before


@pytest.mark.parametrize("endpoint", JOB_ENDPOINTS, ids=[e.name for e in JOB_ENDPOINTS])
def test_the_job_api_refuses_anonymous_and_changes_nothing(pctx, endpoint):
    before = db_state()
    response = call(pctx["anonymous"], for_attempt(endpoint, pctx["chain"].latest_attempt_id), pctx)
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "not_authenticated"
    assert db_state() == before


@pytest.mark.parametrize("endpoint", JOB_ENDPOINTS, ids=[e.name for e in JOB_ENDPOINTS])
def test_another_users_attempt_is_not_found_and_nothing_changes(pctx, endpoint):
    before = db_state()
    response = call(pctx["intruder"], for_attempt(endpoint, pctx["chain"].latest_attempt_id), pctx)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["message"] == "No such attempt of yours."
    assert db_state() == before


@pytest.mark.parametrize("endpoint", JOB_ENDPOINTS, ids=[e.name for e in JOB_ENDPOINTS])
def test_a_job_token_acts_on_its_own_attempt_whatever_attempt_it_names(pctx, submit, endpoint):
    """The intruder's job names the owner's attempt: its own attempt answers, the owner's is untouched."""
    own = submit(pctx["intruder_user"], name="intruders-job")
    for chain in (own, pctx["chain"]):
        lifecycle.attempt_mark_running(attempt_id=chain.latest_attempt_id)  # go-suspend needs a running job
    victim = attempt_rows(pctx["chain"])
    response = call(job_token_client(own), for_attempt(endpoint, pctx["chain"].latest_attempt_id), pctx)
    assert response.status_code == endpoint.ok_status, response.content
    assert attempt_rows(pctx["chain"]) == victim


@pytest.mark.parametrize("endpoint", JOB_ENDPOINTS, ids=[e.name for e in JOB_ENDPOINTS])
def test_the_owner_names_their_attempt_with_an_ordinary_token(pctx, endpoint):
    lifecycle.attempt_mark_running(attempt_id=pctx["chain"].latest_attempt_id)
    response = call(pctx["owner"], for_attempt(endpoint, pctx["chain"].latest_attempt_id), pctx)
    assert response.status_code == endpoint.ok_status, response.content
