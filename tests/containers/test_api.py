"""The containers API: the permission suite on every endpoint, and the shapes users rely on."""

from __future__ import annotations

import pytest

from apps.accounts import services as account_services
from apps.containers import services
from apps.containers.models import Container
from tests.containers.conftest import Jupyter
from tests.factories import UserFactory
from tests.permissions import Endpoint, call, db_state

ENDPOINTS = [
    Endpoint("list", "GET", lambda c: "/api/v1/containers/"),
    Endpoint(
        "create",
        "POST",
        lambda c: "/api/v1/containers/",
        {"name": "new", "node_group": "jupyter_cpu", "cpu": 1, "memory_gib": 1, "start": False},
        ok_status=201,
    ),
    Endpoint("quota", "GET", lambda c: "/api/v1/containers/quota/"),
    Endpoint("detail", "GET", lambda c: f"/api/v1/containers/{c['c'].pk}/", owner_scoped=True),
    Endpoint("edit", "PATCH", lambda c: f"/api/v1/containers/{c['c'].pk}/", {"cpu": 2}, owner_scoped=True),
    Endpoint("delete", "DELETE", lambda c: f"/api/v1/containers/{c['c'].pk}/", owner_scoped=True, ok_status=204),
    Endpoint("start", "POST", lambda c: f"/api/v1/containers/{c['c'].pk}/start/", owner_scoped=True),
    Endpoint("stop", "POST", lambda c: f"/api/v1/containers/{c['c'].pk}/stop/", owner_scoped=True),
    Endpoint("restart", "POST", lambda c: f"/api/v1/containers/{c['c'].pk}/restart/", owner_scoped=True),
    Endpoint("keep", "POST", lambda c: f"/api/v1/containers/{c['c'].pk}/keep/", owner_scoped=True),
    Endpoint(
        "service-restart",
        "POST",
        lambda c: f"/api/v1/containers/{c['c'].pk}/services/jupyter/restart/",
        owner_scoped=True,
        ok_status=409,  # not running: "start it instead"
    ),
    Endpoint("logs", "GET", lambda c: f"/api/v1/containers/{c['c'].pk}/logs/?service=jupyter", owner_scoped=True),
]


@pytest.fixture
def ctx(db, make_client, settings, tmp_path):
    settings.ROTA_LOG_ROOT = tmp_path / "logs"
    from apps.launcher.backends import reset_backend

    reset_backend()
    account_services.ensure_admin_groups()
    jupyter = Jupyter()
    owner = UserFactory(username="owner")
    intruder = UserFactory(username="intruder")
    admin = UserFactory(username="the-admin", groups=["root"])
    c = services.container_create(actor=owner, name="lab", node_group=jupyter.group, cpu=1, memory_gib=1, start=False)
    Container.objects.filter(pk=c.pk).update(run=1, started_spec={"ssh": False, "services": []})
    return {
        "c": c,
        "clients": {
            "anonymous": make_client(None),
            "owner": make_client(owner),
            "intruder": make_client(intruder),
            "admin": make_client(admin),
        },
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_anonymous_is_refused_and_nothing_changes(ctx, endpoint):
    before = db_state()
    response = call(ctx["clients"]["anonymous"], endpoint, ctx)
    assert response.status_code == 401
    assert db_state() == before


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.owner_scoped], ids=[e.name for e in ENDPOINTS if e.owner_scoped]
)
def test_another_user_gets_404_and_nothing_changes(ctx, endpoint):
    before = db_state()
    response = call(ctx["clients"]["intruder"], endpoint, ctx)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert db_state() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_owner_is_allowed(ctx, endpoint):
    response = call(ctx["clients"]["owner"], endpoint, ctx)
    assert response.status_code == endpoint.ok_status, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_admin_is_allowed(ctx, endpoint):
    response = call(ctx["clients"]["admin"], endpoint, ctx)
    assert response.status_code == endpoint.ok_status, response.content


def test_list_shows_only_mine_and_admins_may_see_all(ctx):
    body = ctx["clients"]["owner"].get("/api/v1/containers/").json()
    assert [(c["owner"], c["name"], c["status"]) for c in body] == [("owner", "lab", "stopped")]
    assert ctx["clients"]["intruder"].get("/api/v1/containers/").json() == []
    assert ctx["clients"]["intruder"].get("/api/v1/containers/?all=1").json() == []
    assert [c["name"] for c in ctx["clients"]["admin"].get("/api/v1/containers/?all=1").json()] == ["lab"]
    detail = ctx["clients"]["owner"].get("/api/v1/containers/lab/").json()
    assert detail["url"].endswith("/containers/owner/lab/lab")
    assert [s["name"] for s in detail["services"]] == ["jupyter"]


def test_quota_exhaustion_is_a_clear_403(ctx):
    client = ctx["clients"]["owner"]
    payload = {"node_group": "jupyter_cpu", "cpu": 1, "memory_gib": 1, "start": False}
    assert client.post("/api/v1/containers/", {"name": "b", **payload}, format="json").status_code == 201
    assert client.post("/api/v1/containers/", {"name": "c", **payload}, format="json").status_code == 201
    response = client.post("/api/v1/containers/", {"name": "d", **payload}, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "containers 3 in use + 1 asked > 3 allowed" in error["message"]
    quota = client.get("/api/v1/containers/quota/").json()
    assert quota == [
        {
            "group": "jupyter_cpu",
            "containers": 3,
            "cpu": 0,
            "memory_gib": 0,
            "gpus": 0,
            "ports": 0,
            "quota": {"containers": 3, "cpu": 12, "memory_gib": 48, "gpus": 0, "ports": 2},
        }
    ]


def test_bad_input_names_the_field(ctx):
    response = ctx["clients"]["owner"].post(
        "/api/v1/containers/", {"name": "Bad Name", "node_group": "jupyter_cpu"}, format="json"
    )
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


def test_schema_lists_the_container_endpoints(ctx):
    schema = ctx["clients"]["owner"].get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/v1/containers/", "/api/v1/containers/{key}/logs/", "/api/v1/containers/{key}/start/"):
        assert path in paths
