"""HAI endpoints for init, whoami, nodes and images: request and response shapes as hai-cli uses them."""

from __future__ import annotations

import pytest

from apps.accounts import services as account_services
from apps.accounts.models import ApiToken
from apps.experiments.models import Attempt
from tests.factories import UserFactory
from tests.hai.conftest import Hai

pytestmark = pytest.mark.django_db


def test_init_exchanges_the_token_for_a_new_working_one(hai, user):
    before = ApiToken.objects.filter(user=user).count()
    response = hai("/operating/user/access_token/create")
    assert response.status_code == 200  # init goes through python-requests, which needs 200
    body = response.json()
    assert body["success"] == 1
    result = body["result"]
    assert result["from_user_name"] == result["access_user_name"] == "alice"
    assert result["access_scope"] == "all"
    assert result["expire_at"] == "3000-01-01 00:00:00"  # naive: the client compares with local time
    assert ApiToken.objects.filter(user=user).count() == before + 1
    again = Hai(result["access_token"])("/query/user/info")
    assert again.json()["result"]["user_name"] == "alice"


@pytest.mark.parametrize(
    ("token", "status", "needle"),
    [
        (None, 403, "No token"),
        ("rota_abcdefgh_" + "x" * 32, 403, "Unknown token"),
        ("not-a-token", 403, "Malformed token"),
    ],
)
def test_a_missing_or_unknown_token_is_refused_in_hai_envelope(token, status, needle):
    hai = Hai(token)
    response = hai("/query/user/info")
    assert response.status_code == status
    body = response.json()
    assert body["success"] == 0
    assert needle in body["msg"]


def test_an_expired_or_revoked_token_answers_401(user):
    issued = account_services.token_create(actor=user, name="x")
    account_services.token_revoke(actor=user, token=issued.token)
    response = Hai(issued.raw)("/query/user/info")
    assert response.status_code == 401
    assert response.json() == {"success": 0, "msg": "This token was revoked. Create a new one under Account → Tokens."}


def test_job_tokens_and_get_requests_are_refused(user):
    job = account_services.token_create_for_attempt(user=user, attempt_id=1)
    response = Hai(job.raw)("/query/user/info")
    assert (response.status_code, response.json()["success"]) == (403, 0)
    assert "Job tokens" in response.json()["msg"]
    response = Hai(job.raw)("/query/user/info", method="get")
    assert response.status_code == 405
    assert response.json() == {"success": 0, "msg": "HAI endpoints answer POST only."}


def test_whoami_user_info_has_every_field_the_client_reads(hai, user):
    body = hai("/query/user/info").json()
    assert body["success"] == 1
    result = body["result"]
    for key in ("user_id", "user_name", "nick_name", "shared_group", "role", "access_scope"):
        assert key in result, key
    assert (result["user_name"], result["role"], result["access_scope"]) == ("alice", "internal", "all")
    assert "token" not in result  # never echo a secret


def test_whoami_quota_lists_node_quota_by_group_and_priority_name(cluster, user, make_hai, submit):
    hai = make_hai(user)
    submit(user, nodes=2, priority=30)  # runs at HIGH on two nodes
    body = hai("/query/user/quota/list").json()
    assert body["success"] == 1
    result = body["result"]
    assert result["node_quota"] == {
        "node-training-EXTREME_HIGH": 4,
        "node-training-VERY_HIGH": 4,
        "node-training-HIGH": 4,
        "node-training-NORMAL": 4,
        "node-training-ABOVE_NORMAL": 4,
        "node-training-LOW": 4,
    }
    assert result["used_node_quota"] == {
        "training-LOW": 0,
        "training-NORMAL": 0,
        "training-ABOVE_NORMAL": 0,
        "training-HIGH": 2,
        "training-VERY_HIGH": 0,
        "training-EXTREME_HIGH": 0,
    }
    assert result["jupyter_quota"] == {}
    assert result["train_environments"] == ["default"]
    used = hai("/query/user/training_quota/get_used").json()["result"]
    assert used["already_used_quota"]["training-HIGH"] == 2
    assert used["user_name"] == "alice"


def test_whoami_token_list_masks_every_secret(hai, user):
    body = hai("/query/user/access_token/list").json()
    tokens = body["result"]["access_tokens"]
    assert len(tokens) == 1
    row = tokens[0]
    for key in ("from_user_name", "access_user_name", "access_scope", "expire_at", "active"):
        assert key in row
    assert hai.token not in str(body)
    assert row["access_token"].endswith("_…")
    assert row["expire_at"] == "3000-01-01 00:00:00"


def test_nodes_have_the_fields_of_hai_cli_nodes_and_busy_nodes_show_working(cluster, user, make_hai, submit):
    other = UserFactory(username="bob")
    chain = submit(other, nodes=1)
    attempt = Attempt.objects.get(pk=chain.latest_attempt_id)
    held = attempt.ranks.get().node.name
    body = make_hai(user)("/query/node/list").json()
    assert body["success"] == 1
    rows = {row["name"]: row for row in body["cluster_df"]}
    assert sorted(rows) == ["n0", "n1", "n2", "n3"]
    for row in rows.values():
        for key in ("name", "status", "working", "mars_group", "cluster"):
            assert key in row, key
        assert row["status"] == "Ready"
        assert row["mars_group"] == "training"
    assert rows[held]["working"] == "training"
    assert rows[held]["working_user"] is None  # somebody else's job: busy, not whose
    assert [r["working"] for n, r in rows.items() if n != held] == [None, None, None]
    mine = make_hai(other)("/query/node/list").json()
    assert {r["name"]: r for r in mine["cluster_df"]}[held]["working_user"] == "bob"


def test_images_list_gives_environments_with_env_name_and_quota(cluster, hai):
    body = hai("/ugc/user/train_image/list").json()
    assert body["success"] == 1
    assert body["result"]["user_images"] == []
    (image,) = body["result"]["mars_images"]
    assert (image["env_name"], image["image"], image["quota"]) == ("default", "python:3.11", 1)
    assert image["config"]["python"] == "python3"


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/query/task/container_log", "no container logs"),
        ("/operating/task/haiprof", "haiprof"),
        ("/ugc/swap_memory", "swap"),
        ("/query/user/artifact/get", "no artifacts"),
        ("/operating/rerun_task", "no rerun"),
        ("/monitor_v2/task_perf_api", "does not serve /monitor_v2/task_perf_api"),
        ("/query/something/new", "does not serve /query/something/new"),
        ("/monitor/task/chain_perf_series", "metrics in the portal"),
        ("/operating/user/training_quota/update", "quotas are set by admins"),
    ],
)
def test_unsupported_features_answer_the_error_envelope(hai, path, needle):
    response = hai(path, ("id", 1), ("rank", 0))
    assert response.status_code == 404
    body = response.json()
    assert body["success"] == 0
    assert needle in body["msg"]


def test_the_query_string_token_never_appears_in_captured_logs(hai, caplog, capsys):
    import logging

    with caplog.at_level(logging.DEBUG):
        hai("/query/user/info")
        hai("/query/task", ("id", "abc"))  # a 400
        hai("/query/task", ("id", 999))  # a 404
        hai("/query/nothing/here")  # not served
    captured = capsys.readouterr()
    assert "Not Found" in caplog.text or "Bad Request" in caplog.text  # something was logged
    assert hai.token not in caplog.text
    assert hai.token not in captured.out + captured.err


def test_rotas_own_monitor_pages_are_not_taken_by_the_hai_routes():
    from django.urls import Resolver404, resolve

    try:
        match = resolve("/monitor/")
    except Resolver404:
        return  # no admin pages (yet): nothing to take
    assert not match.view_name.startswith("hai:")


def test_the_node_list_costs_the_same_queries_however_many_nodes_are_busy(
    cluster, user, make_hai, submit, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hai = make_hai(user)
    with CaptureQueriesContext(connection) as idle:
        hai("/query/node/list")
    for _ in range(3):
        submit(user)
    with django_assert_max_num_queries(len(idle.captured_queries)):
        body = hai("/query/node/list").json()
    assert sum(1 for row in body["cluster_df"] if row["working"]) == 3
