"""HAI logs (the last_seen cursor, stop_code/exit_code for ``logs -f``) and task actions; a full flow."""

from __future__ import annotations

import json

import pytest

from apps.experiments import lifecycle
from apps.experiments.choices import ChainStatus, RankStatus, WorkerStatus, stopped_outcome
from apps.experiments.models import Attempt, Chain
from apps.logs.store import get_log_store
from tests.factories import UserFactory
from tests.hai.conftest import create_body

pytestmark = pytest.mark.django_db


def latest(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def run(chain: Chain) -> Attempt:
    """Play the launcher: every rank running."""
    attempt = latest(chain)
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    assert lifecycle.attempt_mark_running(attempt_id=attempt.pk)
    return latest(chain)


def write(chain: Chain, *lines: str, rank: int = 0) -> None:
    get_log_store().append_lines(str(chain.pk), latest(chain).pk, rank, list(lines))


def log(hai, chain: Chain, last_seen: object = "null", rank: int = 0) -> dict:
    """``hai-cli logs``: the cursor goes back as JSON with ', ' and ': ' separators, unencoded."""
    text = last_seen if isinstance(last_seen, str) else json.dumps(last_seen)
    return hai("/query/task/log", ("chain_id", chain.pk), ("rank", rank), ("last_seen", text)).json()


def follow_exit(answer: dict) -> int | None:
    """hai-cli's exit rule after a poll: None = keep polling."""
    code = answer["stop_code"]
    if code >= 2048:
        return None
    if code == 1:
        return 0
    if 128 <= code < 2048:
        return 1  # HAI's exit_code is a string: the client prints it and exits 1
    return None


def test_log_before_any_output_says_so_and_has_every_key(cluster, hai, submit, user):
    chain = submit(user)
    body = log(hai, chain)
    assert body["success"] == 1
    assert body["data"] == "还没产生日志"
    assert isinstance(body["stop_code"], int) and body["stop_code"] == 0
    assert set(body) >= {"data", "stop_code", "exit_code", "last_seen"}
    assert set(body["last_seen"]) == {"timestamp", "offset", "mtime", "id"}
    # hfai's log_ng spells the first cursor None
    assert log(hai, chain, "None")["data"] == "还没产生日志"


def test_follow_reads_appends_once_then_ends_with_the_job(cluster, hai, submit, user):
    chain = submit(user)
    attempt = run(chain)
    write(chain, "step 1", "step 2")
    first = log(hai, chain)
    assert [line[29:] for line in first["data"].splitlines()] == ["step 1", "step 2"]
    assert first["data"].splitlines()[0][0] == "[" and first["data"].splitlines()[0][27] == "]"  # 28-char prefix
    assert first["last_seen"]["id"] == attempt.pk
    assert follow_exit(first) is None
    assert log(hai, chain, first["last_seen"])["data"] == ""  # nothing new: nothing repeated
    write(chain, "step 3")
    second = log(hai, chain, first["last_seen"])
    assert [line[29:] for line in second["data"].splitlines()] == ["step 3"]
    lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.SUCCEEDED, exit_code=0)
    last = log(hai, chain, second["last_seen"])
    assert (last["data"], last["stop_code"], follow_exit(last)) == ("", 1, 0)


def test_follow_crosses_a_suspend_into_the_next_attempt(cluster, hai, submit, user):
    chain = submit(user)
    first_attempt = run(chain)
    write(chain, "before suspend")
    answer = log(hai, chain)
    hai("/operating/task/suspend", ("chain_id", chain.pk), ("restart_delay", 0))
    lifecycle.attempt_mark_suspended(attempt_id=first_attempt.pk)
    answer = log(hai, chain, answer["last_seen"])
    assert follow_exit(answer) is None  # suspended: the follow goes on
    hai("/operating/task/resume", ("chain_id", chain.pk))
    second_attempt = run(chain)
    write(chain, "after resume")
    answer = log(hai, chain, answer["last_seen"])
    assert f"attempt 2 (id {second_attempt.pk})" in answer["data"]
    assert answer["data"].splitlines()[-1][29:] == "after resume"
    assert answer["last_seen"]["id"] == second_attempt.pk
    lifecycle.attempt_mark_finished(
        attempt_id=second_attempt.pk, status=WorkerStatus.FAILED, exit_code=3, message="boom"
    )
    end = log(hai, chain, answer["last_seen"])
    assert (end["stop_code"], end["exit_code"], end["error_msg"], follow_exit(end)) == (128, "3", "boom", 1)


def test_a_stopped_job_ends_the_follow_with_manual_stop(cluster, hai, submit, user):
    chain = submit(user)
    assert hai("/operating/task/stop", ("chain_id", chain.pk), ("op", "stop")).json()["success"] == 1
    chain.refresh_from_db()
    attempt = latest(chain)
    if attempt.worker_status == WorkerStatus.STOPPING:
        lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.STOPPED)
    end = log(hai, chain)
    assert (end["stop_code"], follow_exit(end)) == (1024, 1)


def test_log_cursor_of_another_task_or_garbage_is_refused(cluster, hai, submit, user):
    chain = submit(user)
    other = submit(user)
    stranger = log(hai, chain, {"timestamp": "x", "offset": 0, "mtime": "x", "id": latest(other).pk})
    assert stranger == {"success": 0, "msg": "last_seen does not belong to this task."}
    assert log(hai, chain, "{not json")["success"] == 0
    assert log(hai, chain, rank=1)["msg"] == "rank must be between 0 and 0."


def test_the_log_of_a_job_one_may_not_see_is_not_found(cluster, make_hai, submit, user):
    chain = submit(UserFactory(username="bob"))
    response = make_hai(user)("/query/task/log", ("chain_id", chain.pk), ("rank", 0), ("last_seen", "null"))
    assert (response.status_code, response.json()["success"]) == (404, 0)


@pytest.mark.parametrize(
    ("op", "status", "stop_code", "exit"), [("succeed", "succeeded", 1, 0), ("fail", "failed", 128, 1)]
)
def test_stop_succeeded_or_failed_records_that_outcome(cluster, hai, submit, user, op, status, stop_code, exit):
    chain = submit(user)
    attempt = run(chain)
    assert hai("/operating/task/stop", ("chain_id", chain.pk), ("op", op)).json()["success"] == 1
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.stop_reason) == (WorkerStatus.STOPPING, f"marked_{status}")
    # the launcher, once the processes are gone
    assert lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=stopped_outcome(attempt.stop_reason))
    end = log(hai, chain)
    assert (end["stop_code"], follow_exit(end)) == (stop_code, exit)
    task = hai("/query/task", ("chain_id", chain.pk)).json()["result"]["task"]
    assert (task["worker_status"], task["chain_status"]) == (status, "finished")


def test_a_job_that_never_ran_cannot_be_marked_succeeded(cluster, make_hai, submit, user):
    hog = submit(user, nodes=4)
    chain = submit(user)
    assert latest(chain).worker_status == WorkerStatus.QUEUED  # waits for hog's nodes
    hai = make_hai(user)
    body = hai("/operating/task/stop", ("chain_id", chain.pk), ("op", "succeed")).json()
    assert body["success"] == 0
    assert "can only be stopped (canceled)" in body["msg"]
    assert latest(chain).worker_status == WorkerStatus.QUEUED  # nothing happened
    assert hai("/operating/task/stop", ("chain_id", chain.pk), ("op", "pause")).json()["success"] == 0
    assert latest(hog).worker_status == WorkerStatus.STARTING


def test_actions_on_someone_elses_task_are_refused_and_change_nothing(cluster, make_hai, submit, user):
    chain = submit(UserFactory(username="bob"))
    hai = make_hai(user)
    for path, extra in (
        ("/operating/task/stop", ("op", "stop")),
        ("/operating/task/suspend", ("restart_delay", 0)),
        ("/operating/task/priority/update", ("priority", 50)),
        ("/operating/task/tag", ("tag", "x")),
    ):
        response = hai(path, ("chain_id", chain.pk), extra)
        assert (response.status_code, response.json()["success"]) == (404, 0), path
    assert latest(chain).worker_status == WorkerStatus.STARTING
    chain.refresh_from_db()
    assert (chain.priority, chain.tag_names) == (10, [])


def test_priority_tag_untag_and_star(cluster, hai, submit, user):
    chain = submit(user)
    body = hai("/operating/task/priority/update", ("chain_id", chain.pk), ("priority", 30)).json()
    assert body == {"success": 1, "msg": f"Priority of task {chain.pk} is now HIGH."}
    again = hai("/operating/task/priority/update", ("chain_id", chain.pk), ("priority", 40)).json()
    assert again["success"] == 0 and "once every 10 seconds" in again["msg"]
    assert hai("/operating/task/tag", ("chain_id", chain.pk), ("tag", "best")).json()["success"] == 1
    assert hai("/operating/task/tag", ("chain_id", chain.pk), ("tag", "star")).json()["success"] == 1
    assert hai("/operating/task/tag", ("chain_id", chain.pk), ("tag", "_shared")).json()["success"] == 0
    task = hai("/query/task", ("chain_id", chain.pk)).json()["result"]["task"]
    assert (task["tags"], task["star"], task["priority"] >= 10) == (["best", "star"], True, True)
    hai("/operating/task/untag", ("chain_id", chain.pk), ("tag", "best"))
    hai("/operating/task/untag", ("chain_id", chain.pk), ("tag", "star"))
    chain.refresh_from_db()
    assert (chain.priority, chain.tag_names, chain.starred) == (30, [], False)


def test_sys_log_and_log_search(cluster, hai, submit, user):
    chain = submit(user, nodes=2)
    run(chain)
    write(chain, "loss=1", "hello & bye", rank=0)
    write(chain, "hello & bye", "hello & bye", rank=1)
    # the one value the client form-encodes: 'hello & bye' arrives as hello+%26+bye
    body = hai("/query/task/log/search", ("chain_id", chain.pk), ("content", "hello+%26+bye")).json()
    assert body == {"success": 1, "data": [1, 2]}
    sys_log = hai("/query/task/sys_log", ("chain_id", chain.pk)).json()
    assert sys_log["success"] == 1
    assert f"attempt 1 (id {latest(chain).pk}): running" in sys_log["data"]


def test_full_flow_init_create_list_status_logs_suspend_resume_stop(cluster, make_hai, user, workspace):
    raw = make_hai(user)
    access = raw("/operating/user/access_token/create").json()["result"]["access_token"]
    hai = type(raw)(access)
    created = hai("/operating/task/create", body=create_body(workspace, name="flow test")).json()
    assert created["success"] == 1
    chain_id = created["task"]["chain_id"]
    listed = hai(
        "/query/task/list", ("page", 1), ("page_size", 12), ("task_type", "training"), ("select_pods", "False")
    ).json()
    assert [t["chain_id"] for t in listed["result"]["tasks"]] == [chain_id]
    status = hai("/query/task", ("nb_name", "flow test")).json()["result"]["task"]
    assert status["chain_id"] == chain_id
    chain = Chain.objects.get(pk=int(chain_id))
    attempt = run(chain)
    write(chain, "epoch 1")
    answer = log(hai, chain)
    assert answer["data"].endswith("epoch 1\n")
    assert hai("/operating/task/suspend", ("chain_id", chain_id), ("restart_delay", 0)).json()["success"] == 1
    lifecycle.attempt_mark_suspended(attempt_id=attempt.pk)
    assert hai("/query/task", ("chain_id", chain_id)).json()["result"]["task"]["chain_status"] == "suspended"
    resumed = hai("/operating/task/resume", ("chain_id", chain_id)).json()
    assert resumed["success"] == 1 and resumed["task"]["restart_count"] == 1
    run(chain)
    assert hai("/operating/task/stop", ("chain_id", chain_id), ("op", "stop")).json()["success"] == 1
    lifecycle.attempt_mark_finished(attempt_id=latest(chain).pk, status=WorkerStatus.STOPPED)
    chain.refresh_from_db()
    assert chain.status == ChainStatus.STOPPED
    end = log(hai, chain, answer["last_seen"])
    assert (end["stop_code"], follow_exit(end)) == (1024, 1)
    task = hai("/query/task", ("chain_id", chain_id)).json()["result"]["task"]
    assert (task["chain_status"], task["worker_status"], task["stop_code_list"]) == ("finished", "stopped", [16, 1024])


def test_a_log_longer_than_a_page_starts_at_its_end_then_follows(cluster, hai, submit, user, monkeypatch):
    from apps.hai import views

    monkeypatch.setattr(views, "LOG_PAGE_BYTES", 200)
    chain = submit(user)
    run(chain)
    write(chain, *[f"line {i:03d}" for i in range(40)])  # 40 × 38 bytes
    first = log(hai, chain)
    lines = [line[29:] for line in first["data"].splitlines()]
    assert lines == [f"line {i:03d}" for i in range(35, 40)]  # the end, from a line start
    assert first["stop_code"] == 0
    write(chain, "line 040")
    nxt = log(hai, chain, first["last_seen"])
    assert [line[29:] for line in nxt["data"].splitlines()] == ["line 040"]
