"""HAI task endpoints: create (TaskSchema v2), status/describe (/query/task), list."""

from __future__ import annotations

from datetime import datetime

import pytest

from apps.experiments.models import Attempt, Chain
from tests.factories import UserFactory
from tests.hai.conftest import create_body

pytestmark = pytest.mark.django_db

POD_KEYS = ("task_id", "pod_id", "job_id", "status", "node", "role")
TABLE_KEYS = ("id", "chain_id", "nb_name", "nodes", "task_type", "chain_status", "created_at", "restart_count")


def assert_task_shape(task: dict) -> None:
    """Everything whose absence or form crashes hai-cli."""
    for key in TABLE_KEYS:
        assert key in task, key
    for key in ("created_at", "begin_at", "end_at", "suspend_updated_at"):
        if key in task:
            datetime.fromisoformat(task[key])  # parseable, and naive
            assert datetime.fromisoformat(task[key]).tzinfo is None
    for pod in task["_pods_"]:
        for key in POD_KEYS:
            assert key in pod, key
    assert isinstance(task["stop_code"], int)


def test_create_with_the_clients_body_submits_through_the_service(cluster, hai, workspace, user):
    response = hai("/operating/task/create", body=create_body(workspace, nodes=2))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] == 1
    assert body["msg"] == "任务创建队列成功，请等待调度"
    task = body["task"]
    assert_task_shape(task)
    chain = Chain.objects.get()
    assert (chain.owner, chain.name, chain.node_count, chain.priority) == (user, "my exp", 2, 30)
    assert chain.parameters == ["-c", "a b.yml"]  # the client shell-quotes; Rota stores arguments
    assert task["chain_id"] == str(chain.pk)
    assert task["id"] == chain.latest_attempt_id
    assert task["nb_name"] == "my exp"
    assert task["chain_status"] == "running"  # the scheduling pass placed it on commit
    assert task["worker_status"] == "created"
    assert [p["job_id"] for p in task["_pods_"]] == [0, 1]
    assert [p["role"] for p in task["_pods_"]] == ["master", "worker"]
    assert task["_pods_"][0]["pod_id"] == f"alice-{task['id']}-0"
    assert task["config_json"]["schema"]["resource"] == {"image": "default", "group": "training", "node_count": 2}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"resource": {"image": "default", "group": "training", "node_count": "None"}}, "-n N"),
        ({"version": 1}, "version 2"),
        ({"name": "a(b)"}, "parentheses"),
        ({"resource": {"image": "default", "group": "gpu", "node_count": 1}}, "Unknown node group 'gpu'"),
        ({"resource": {"image": "u/img/1", "group": "training", "node_count": 1}}, "user-loaded images"),
        ({"options": {"profile": {"x": 1}}}, "haiprof"),
        ({"services": [{"name": "web", "port": 80}]}, "services"),
        ({"task_type": "jupyter"}, "training tasks only"),
        ({"priority": 7}, "Unknown priority"),
    ],
)
def test_create_refuses_what_cannot_run_with_a_clear_message_and_writes_nothing(
    cluster, hai, workspace, change, needle
):
    body = create_body(workspace)
    body.update(change)
    response = hai("/operating/task/create", body=body)
    assert response.json()["success"] == 0
    assert needle in response.json()["msg"]
    assert not Chain.objects.exists()


def test_create_with_a_body_that_is_not_json_is_refused(cluster, hai):
    response = hai.http.post(f"/operating/task/create?token={hai.token}", data=b"{", content_type="application/json")
    assert response.json() == {"success": 0, "msg": "The body must be a TaskSchema v2 JSON object."}


def test_create_with_json_nested_a_thousand_levels_is_refused_not_a_500(cluster, hai):
    body = b'{"spec": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = hai.http.post(f"/operating/task/create?token={hai.token}", data=body, content_type="application/json")
    assert response.json() == {"success": 0, "msg": "The body must be a TaskSchema v2 JSON object."}
    assert not Chain.objects.exists()


def test_create_with_a_read_only_token_is_refused(cluster, make_hai, user, workspace):
    response = make_hai(user, scope="read_only")("/operating/task/create", body=create_body(workspace))
    assert (response.status_code, response.json()["msg"]) == (403, "This token is read-only.")
    assert not Chain.objects.exists()


def test_create_passes_environments_unquoted_and_options(cluster, hai, workspace):
    body = create_body(workspace, name="envs")
    body["spec"]["environments"] = {"GREETING": "'x y'"}
    body["options"] = {"whole_life_state": 3, "tags": ["t1"], "py_venv": "ignored[alice]"}
    assert hai("/operating/task/create", body=body).json()["success"] == 1
    chain = Chain.objects.get()
    assert chain.env_vars == {"GREETING": "x y"}
    assert chain.whole_life_state == 3
    assert chain.tag_names == ["t1"]


def test_status_finds_a_task_by_id_name_or_chain_id(cluster, hai, submit, user):
    chain = submit(user, name="my exp")
    attempt_id = chain.latest_attempt_id
    for pair in (("id", attempt_id), ("nb_name", "my exp"), ("chain_id", chain.pk)):
        body = hai("/query/task", pair).json()
        assert body["success"] == 1, pair
        task = body["result"]["task"]
        assert_task_shape(task)
        assert (task["chain_id"], task["id"]) == (str(chain.pk), attempt_id)


def test_status_of_a_task_one_may_not_see_is_not_found(cluster, make_hai, submit, user):
    chain = submit(UserFactory(username="bob"), name="secret")
    hai = make_hai(user)
    for pair in (("chain_id", chain.pk), ("id", chain.latest_attempt_id), ("nb_name", "secret")):
        response = hai("/query/task", pair)
        assert response.status_code == 404
        assert response.json()["success"] == 0


def test_status_without_a_selector_or_with_garbage_says_what_to_pass(hai):
    assert hai("/query/task").json() == {"success": 0, "msg": "Say which task: pass id, chain_id or nb_name."}
    assert hai("/query/task", ("id", "None")).json()["success"] == 0
    assert "must be a number" in hai("/query/task", ("chain_id", "abc")).json()["msg"]


def test_describe_gives_the_schema_that_resubmits_the_task(cluster, hai, workspace):
    hai("/operating/task/create", body=create_body(workspace, name="again"))
    schema = hai("/query/task", ("nb_name", "again")).json()["result"]["task"]["config_json"]["schema"]
    assert schema["version"] == 2
    assert schema["spec"]["parameters"] == "-c 'a b.yml'"
    assert schema["name"] == "again"
    Chain.objects.all().delete()
    assert hai("/operating/task/create", body=schema).json()["success"] == 1


LIST_QUERY = (
    ("page", 1),
    ("page_size", 12),
)
LIST_TAIL = (("task_type", "training"), ("task_type", "virtual"), ("task_type", "background"), ("select_pods", "False"))


def _list(hai, page=1, size=12, select_pods="False", *extra):
    pairs = [("page", page), ("page_size", size)]
    # the client puts the token after page and page_size
    hai_pairs = [*pairs, ("token", hai.token), *LIST_TAIL[:3], *extra, ("select_pods", select_pods)]
    saved, hai.token = hai.token, None
    try:
        return hai("/query/task/list", *hai_pairs)
    finally:
        hai.token = saved


def test_list_answers_the_clients_exact_query_with_total_and_tasks(cluster, hai, submit, user):
    chains = [submit(user, name=f"job {i}") for i in range(3)]
    submit(UserFactory(username="bob"))
    body = _list(hai).json()
    assert body["success"] == 1
    assert body["result"]["total"] == 3
    tasks = body["result"]["tasks"]
    assert [t["chain_id"] for t in tasks] == [str(c.pk) for c in reversed(chains)]
    for task in tasks:
        assert_task_shape(task)
        assert task["_pods_"] == []  # select_pods=False
    paged = _list(hai, 2, 2).json()["result"]
    assert (paged["total"], [t["nb_name"] for t in paged["tasks"]]) == (3, ["job 0"])
    with_pods = _list(hai, 1, 12, "True").json()["result"]["tasks"]
    assert [len(t["_pods_"]) for t in with_pods] == [1, 1, 1]


def test_list_filters_by_name_pattern_status_and_tag(cluster, hai, submit, user):
    submit(user, name="alpha", tags=["keep"])
    submit(user, name="beta")
    names = lambda *extra: [t["nb_name"] for t in _list(hai, 1, 12, "False", *extra).json()["result"]["tasks"]]  # noqa: E731
    assert names(("nb_name_pattern", "alp")) == ["alpha"]
    assert names(("tag", "keep")) == ["alpha"]
    assert names(("worker_status", "created")) == ["beta", "alpha"]
    assert names(("worker_status", "failed")) == []


def test_list_page_size_is_bounded(hai):
    body = _list(hai, 1, 1000).json()
    assert body == {"success": 0, "msg": "page_size must be between 1 and 100."}


def test_list_query_count_does_not_grow_with_the_page(cluster, hai, submit, user, django_assert_max_num_queries):
    for i in range(2):
        submit(user, name=f"few {i}")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        _list(hai, 1, 12, "True")
    for i in range(6):
        submit(user, name=f"many {i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = _list(hai, 1, 12, "True").json()
    assert body["result"]["total"] == 8
    assert Attempt.objects.count() == 8


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"whole_life_state": 10**30}, "fits in 64 bits"),
        ({"whole_life_state": "x"}, "fits in 64 bits"),
        ({"watchdog_time": 10**30}, "between 60 and"),
        ({"watchdog_time": 5}, "between 60 and"),
    ],
)
def test_create_refuses_numbers_out_of_range_instead_of_failing(cluster, hai, workspace, options, needle):
    body = create_body(workspace)
    body["options"] = options
    response = hai("/operating/task/create", body=body)
    assert (response.status_code, response.json()["success"]) == (400, 0)
    assert needle in response.json()["msg"]
    assert not Chain.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        [],
        "x",
        3,
        {"version": 2, "name": "n", "spec": [], "resource": {}},
        {"version": 2, "name": "n", "priority": 10**40},
    ],
)
def test_create_with_malformed_bodies_answers_the_envelope(cluster, hai, body):
    response = hai("/operating/task/create", body=body)
    assert response.status_code == 400
    assert response.json()["success"] == 0
    assert not Chain.objects.exists()


@pytest.mark.parametrize(
    ("path", "pairs", "status"),
    [
        ("/query/task/list", [("page", "x")], 400),
        ("/query/task/list", [("page", 10**30)], 400),
        ("/query/task/log", [("chain_id", 10**30), ("rank", 0), ("last_seen", "null")], 404),
        ("/query/task/log", [("chain_id", "{chain}"), ("rank", "abc"), ("last_seen", "null")], 400),
        ("/operating/task/priority/update", [("chain_id", "{chain}"), ("custom_rank", "nan")], 400),
    ],
)
def test_garbage_parameters_answer_the_envelope_not_a_500(cluster, hai, submit, user, path, pairs, status):
    chain = submit(user)  # the garbage is in the other parameters: the chain exists
    response = hai(path, *[(name, str(chain.pk) if value == "{chain}" else value) for name, value in pairs])
    assert response.status_code == status, response.content
    assert response.json()["success"] == 0
