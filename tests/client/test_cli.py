"""The ``rota`` CLI against a live embedded platform: real HTTP, scheduler, launcher and processes.

The CLI runs in-process (click's CliRunner) with ``ROTA_URL``/``ROTA_TOKEN`` or a temporary
``XDG_CONFIG_HOME``; results are read back through ``--json`` and checked exactly.
"""

from __future__ import annotations

import json
import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest

from apps.accounts import services as account_services
from apps.accounts.models import ApiToken, User
from rota.errors import ExitCode
from tests.client.conftest import Rota
from tests.conftest import wait_until
from tests.factories import UserFactory

pytestmark = pytest.mark.slow

PASSWORD = "pw-for-tests-1"


def write(workspace: Path, name: str, code: str) -> Path:
    path = workspace / name
    path.write_text(textwrap.dedent(code))
    return path


@pytest.fixture
def alice(platform, cluster, base_env) -> Rota:
    """``rota`` as the user alice-cli, by ROTA_URL and ROTA_TOKEN."""
    user = UserFactory(username="alice-cli")
    issued = account_services.token_create(actor=user, name="tests")
    return Rota({**base_env, "ROTA_URL": platform.url, "ROTA_TOKEN": issued.raw})


def status_of(rota: Rota, job: Any) -> str:
    return rota.json("status", str(job))["status"]


# ---- login, whoami, logout, tokens -----------------------------------------------------------


def test_login_with_password_stores_a_private_token_and_logout_revokes_it(platform, cluster, rota, config_home):
    UserFactory(username="carol")
    result = rota("login", "--url", platform.url, input=f"carol\n{PASSWORD}\n")
    assert f"Logged in to {platform.url} as carol." in result.stdout
    path = config_home / "rota" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert stored["url"] == platform.url and stored["username"] == "carol"
    token = ApiToken.objects.get(pk=stored["token_id"])
    assert token.user.username == "carol" and token.revoked_at is None and token.name.startswith("rota cli on ")

    me = rota.json("whoami")
    assert (me["username"], me["url"], me["token_source"], me["token_scope"]) == ("carol", platform.url, "file", "all")
    listed = rota.json("tokens", "list")
    assert [t["id"] for t in listed] == [token.pk]

    # Logging in again replaces (and revokes) the token the previous login created.
    rota("login", "-u", "carol", "--password-stdin", input=f"{PASSWORD}\n")
    second = json.loads(path.read_text())
    assert second["token_id"] != token.pk and second["url"] == platform.url
    token.refresh_from_db()
    assert token.revoked_at is not None

    result = rota("logout")
    assert "revoked" in result.stdout
    assert ApiToken.objects.get(pk=second["token_id"]).revoked_at is not None
    assert json.loads(path.read_text()) == {"url": platform.url}  # the URL is kept for the next login
    result = rota("whoami", expect=ExitCode.AUTH)
    assert "Not logged in" in result.stderr


def test_wrong_password_is_refused_with_the_servers_message(platform, cluster, rota, config_home):
    UserFactory(username="dave")
    result = rota("login", "--url", platform.url, "-u", "dave", input="wrong\n", expect=ExitCode.REFUSED)
    assert "Error: Wrong user name or password." in result.stderr
    assert not (config_home / "rota" / "config.json").exists()
    body = rota.json("login", "--url", platform.url, "-u", "dave", input="wrong\n", expect=ExitCode.REFUSED)
    assert body["error"]["code"] == "invalid_credentials" and body["error"]["status"] == 400


def test_login_with_a_token(platform, cluster, rota, config_home):
    user = UserFactory(username="erin")
    raw = account_services.token_create(actor=user, name="made in the portal").raw
    result = rota("login", "--url", platform.url, "--token", "-", input=raw + "\n")
    assert "as erin" in result.stdout
    assert json.loads((config_home / "rota" / "config.json").read_text())["token"] == raw
    assert rota.json("whoami")["username"] == "erin"
    assert rota.json("logout") == {"logged_out": True, "revoked": True}  # found by its prefix, then revoked
    assert ApiToken.objects.get(prefix=raw.split("_")[1]).revoked_at is not None

    # Any token may revoke itself, even a read-only one: logout revokes it too.
    read_only = account_services.token_create(actor=user, name="ro", scope="read_only").raw
    rota("login", "--token", read_only)
    assert rota.json("logout") == {"logged_out": True, "revoked": True}
    assert ApiToken.objects.get(prefix=read_only.split("_")[1]).revoked_at is not None


def test_bad_tokens_exit_5_and_say_why(platform, cluster, rota):
    user = UserFactory(username="frank")
    issued = account_services.token_create(actor=user, name="t")
    env = {"ROTA_URL": platform.url}
    result = rota("whoami", env={**env, "ROTA_TOKEN": "rota_zzzzzzzz_" + "x" * 30}, expect=ExitCode.AUTH)
    assert "Error: Unknown token" in result.stderr and "rota login" in result.stderr
    account_services.token_revoke(actor=user, token=issued.token)
    result = rota("list", env={**env, "ROTA_TOKEN": issued.raw}, expect=ExitCode.AUTH)
    assert "This token was revoked." in result.stderr
    body = rota.json("list", env={**env, "ROTA_TOKEN": "garbage"}, expect=ExitCode.AUTH)
    assert body["error"]["status"] == 401 and "Malformed token" in body["error"]["message"]


def test_tokens_create_list_revoke(alice: Rota):
    created = alice.json("tokens", "create", "ci", "--scope", "read_only", "--expires", "30d")
    assert created["token"].startswith("rota_") and created["scope"] == "read_only" and created["expires_at"]
    plain = alice("tokens", "create", "laptop")
    secret = plain.stdout.strip()
    assert secret.startswith("rota_") and "not shown again" in plain.stderr

    listed = alice.json("tokens", "list")
    assert sorted(t["name"] for t in listed) == ["ci", "laptop", "tests"]
    table = alice("tokens", "list").stdout
    assert "* " in next(line for line in table.splitlines() if " tests " in line)  # the token in use

    # The read-only token can read but not write.
    read_only = Rota({**alice.env, "ROTA_TOKEN": created["token"]})
    assert read_only.json("whoami")["token_scope"] == "read_only"
    result = read_only("tokens", "create", "x", expect=ExitCode.REFUSED)
    assert "Error: This token is read-only." in result.stderr

    laptop_prefix = next(t["prefix"] for t in listed if t["name"] == "laptop")
    assert alice.json("tokens", "revoke", str(created["id"]), laptop_prefix) == {
        "revoked": [created["id"], next(t["id"] for t in listed if t["name"] == "laptop")]
    }
    assert [t["name"] for t in alice.json("tokens", "list")] == ["tests"]
    assert len(alice.json("tokens", "list", "--all")) == 3
    result = Rota({**alice.env, "ROTA_TOKEN": secret})("whoami", expect=ExitCode.AUTH)
    assert "revoked" in result.stderr


# ---- submit, follow, status, list ------------------------------------------------------------

TWO_RANKS = """
    import os, sys, time
    rank = os.environ["RANK"]
    for step in range(3):
        print(f"rank {rank} step {step} args {' '.join(sys.argv[1:])} K={os.environ.get('K')}", flush=True)
        time.sleep(0.2)
    print(f"rank {rank} done", flush=True)
"""


def test_submit_two_nodes_with_every_option_then_follow_it_to_the_end(alice: Rota, workspace: Path):
    write(workspace, "two.py", TWO_RANKS)
    job = alice.json(
        "submit",
        str(workspace / "two.py"),
        "--epochs",
        "3",
        "--",
        "-n",
        "2",
        "-g",
        "training",
        "-p",
        "high",
        "-i",
        "default",
        "-e",
        "K=v1",
        "--name",
        "two-ranks",
        "-t",
        "cli",
        "-t",
        "e2e",
        "--watchdog",
        "600",
        "--estimate",
        "2h",
    )
    assert (job["name"], job["nodes"], job["group"], job["priority"], job["priority_name"], job["environment"]) == (
        "two-ranks",
        2,
        "training",
        30,
        "HIGH",
        "default",
    )
    assert (job["workspace"], job["entrypoint"], job["kind"]) == (str(workspace), "two.py", "python")
    assert (job["parameters"], job["env_vars"], job["tags"], job["watchdog_seconds"]) == (
        ["--epochs", "3"],
        {"K": "v1"},
        ["cli", "e2e"],
        600,
    )
    assert job["run_estimate_seconds"] == 7200

    result = alice("logs", "two-ranks", "-f")  # by name; live until the job ends; exit 0: succeeded
    assert [line.split("] ", 1)[1] for line in result.stdout.splitlines()] == [
        "rank 0 step 0 args --epochs 3 K=v1",
        "rank 0 step 1 args --epochs 3 K=v1",
        "rank 0 step 2 args --epochs 3 K=v1",
        "rank 0 done",
    ]
    assert f"Job {job['id']} succeeded." in result.stderr
    assert "rank 1 done" in alice("logs", str(job["id"]), "-r", "1").stdout
    pages = [json.loads(line) for line in alice("logs", "two-ranks", "-f", "--json").stdout.splitlines()]
    assert "".join(p["data"] for p in pages) == result.stdout
    assert (pages[-1]["finished"], pages[-1]["status"], pages[-1]["rank"]) == (True, "succeeded", 0)
    assert alice("logs", str(job["id"]), "--tail", "1").stdout.endswith("rank 0 done\n")

    detail = alice.json("status", str(job["id"]))
    assert detail["status"] == "succeeded"
    ranks = detail["attempts"][-1]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and len({r["node"] for r in ranks}) == 2
    assert {r["status"] for r in ranks} == {"succeeded"}
    text = alice("status", "two-ranks").stdout
    assert f"Job {job['id']}  two-ranks  succeeded" in text
    for fragment in ["Group:", "training, 2 nodes", "Priority:", "HIGH", "python: two.py --epochs 3", "Attempts"]:
        assert fragment in text
    for rank in ranks:
        assert rank["node"] in text

    rows = alice.json("list")["results"]
    assert [(r["id"], r["status"], r["nodes"]) for r in rows] == [(job["id"], "succeeded", 2)]
    assert "two-ranks" in alice("list").stdout


def test_submit_prints_the_id_and_where_to_watch_and_follow_exits_with_the_jobs_outcome(alice, workspace):
    write(workspace, "fail.py", "print('about to fail', flush=True)\nraise SystemExit(3)\n")
    result = alice("submit", str(workspace / "fail.py"), "--", "-g", "training", "-f", expect=ExitCode.JOB_FAILED)
    job_id = int(result.stdout.split("Submitted job ", 1)[1].split()[0])
    assert f"rota logs {job_id} -f" in result.stderr and f"rota status {job_id}" in result.stderr
    assert "about to fail" in result.stdout
    assert f"Job {job_id} failed (" in result.stderr and "code 3" in result.stderr
    alice("logs", str(job_id), "-f", expect=ExitCode.JOB_FAILED)

    # Without --name, a second submit of the same script gets a unique name.
    write(workspace, "wait.py", "import time\ntime.sleep(60)\n")
    first = alice.json("submit", str(workspace / "wait.py"), "--", "-g", "training")
    second = alice.json("submit", str(workspace / "wait.py"), "--", "-g", "training")
    assert (first["name"], second["name"]) == ("wait", "wait-2")
    # An explicit name that is taken is the server's error, exit 4.
    result = alice("submit", str(workspace / "wait.py"), "--", "-g", "training", "--name", "wait", expect=4)
    assert "You already have an unfinished job named 'wait'" in result.stderr
    alice("stop", "wait", "wait-2", "--wait")
    assert alice.json("status", "wait-2")["status"] in {"stopped", "canceled"}


def test_server_validation_errors_are_printed_with_exit_4(alice: Rota, workspace: Path):
    result = alice("submit", str(workspace / "train.py"), "--", "-g", "nope", expect=ExitCode.REFUSED)
    assert "Unknown node group 'nope'" in result.stderr
    result = alice("submit", str(workspace / "train.py"), "--", "-g", "training", "-n", "9", expect=4)
    assert "Group training has 4 usable node(s); this job asks for 9." in result.stderr
    result = alice("status", "no-such-job", expect=ExitCode.REFUSED)
    assert "No job 'no-such-job' that you can see." in result.stderr


def test_a_job_that_can_never_start_is_refused_and_following_one_that_turns_so_exits_8(
    alice: Rota, cluster, workspace: Path
):
    me = User.objects.get(username="alice-cli")
    cluster.set_quota(me, 50, 0)
    result = alice("submit", str(workspace / "train.py"), "--", "-g", "training", "-p", "EXTREME_HIGH", expect=4)
    assert "Needs 1 node but alice-cli's quota in 'training' at EXTREME_HIGH is 0 nodes" in result.stderr
    assert "Levels with enough quota: VERY_HIGH (4)" in result.stderr
    assert alice.json("list")["results"] == []

    # A job that waits for its quota, then the quota shrinks under it: following it ends, with why.
    cluster.set_quota(me, 10, 1)
    write(workspace, "hold.py", "import time\nprint('holding', flush=True)\ntime.sleep(120)\n")
    holder = alice.json("submit", str(workspace / "hold.py"), "--", "-g", "training", "-p", "NORMAL")
    wait_until(lambda: status_of(alice, holder["id"]) == "running", message="the holder to run")
    waiter = alice.json("submit", str(workspace / "train.py"), "--", "-g", "training", "-p", "NORMAL", "-n", "1")
    wait_until(lambda: (alice.json("status", str(waiter["id"])).get("pending") or {}).get("code") == "quota")
    held_up = next(line for line in alice("status", str(waiter["id"])).stdout.splitlines() if "Held up by" in line)
    assert f"your own job {holder['id']} (1 node, NORMAL)" in held_up
    cluster.set_quota(me, 10, 0)
    wait_until(lambda: (alice.json("status", str(waiter["id"])).get("pending") or {}).get("infeasible"))
    result = alice("logs", str(waiter["id"]), "-f", expect=ExitCode.JOB_INFEASIBLE)
    assert f"Job {waiter['id']} can never start as it is: Needs 1 node but alice-cli's quota" in result.stderr
    assert f"rota stop {waiter['id']}" in result.stderr
    alice("stop", str(holder["id"]), "--wait")


# ---- suspend, resume, stop, pending reason ---------------------------------------------------

LONG_RUNNING = """
    import time
    from rota import job

    print("start from", job.get_whole_life_state(), flush=True)
    step = job.get_whole_life_state()
    while True:
        step += 1
        time.sleep(0.05)
        if step % 10 == 0:
            job.set_whole_life_state(step)
            print("step", step, flush=True)
        if job.receive_suspend_command(poll=False):
            job.set_whole_life_state(step)
            print("suspending at", step, flush=True)
            job.go_suspend()
"""


def test_suspend_resume_stop_and_the_exit_codes_of_logs_follow(alice: Rota, workspace: Path):
    write(workspace, "loop.py", LONG_RUNNING)
    job = alice.json("submit", str(workspace / "loop.py"), "--", "-g", "training", "--name", "loop")
    key = str(job["id"])
    wait_until(lambda: status_of(alice, key) == "running", message="job running")
    wait_until(lambda: "step 10" in alice("logs", key).stdout, message="some output")

    held = alice.json("suspend", key, "--wait")
    assert held["status"] == "held" and held["held"] is True
    assert held["attempts"][0]["worker_status"] == "suspended"
    result = alice("logs", key, "-f", expect=ExitCode.JOB_SUSPENDED)
    assert "suspending at" in result.stdout
    assert f"Job {key} is held" in result.stderr and f"rota resume {key}" in result.stderr

    said = alice("resume", key).stdout.strip()  # not "suspended", which reads as a failure
    assert said.startswith(f"Job {key} (loop): queued to resume") or said in {
        f"Job {key} (loop): starting",
        f"Job {key} (loop): running",
    }, said
    wait_until(lambda: status_of(alice, key) == "running", message="the job to run again")
    resumed = alice.json("status", key)
    assert resumed["status"] == "running" and resumed["held"] is False
    wait_until(lambda: "start from" in alice("logs", key, "--tail", "5").stdout, message="second attempt output")
    text = alice("logs", key).stdout
    assert "──── attempt 2" in text  # both attempts, in order

    stopped = alice("stop", key, "--wait")
    assert f"Job {key} (loop): stopped" in stopped.stdout
    alice("logs", key, "-f", expect=ExitCode.JOB_STOPPED)
    result = alice("stop", key, expect=ExitCode.REFUSED)
    assert "This job has already finished" in result.stderr

    detail = alice.json("status", key)
    assert [a["worker_status"] for a in detail["attempts"]] == ["suspended", "stopped"]
    assert detail["attempts"][1]["whole_life_state"] > 0  # carried over from the first attempt


def test_status_explains_why_a_job_waits_and_following_it_waits_too(alice: Rota, workspace: Path):
    write(workspace, "hold.py", "import time\nprint('holding', flush=True)\ntime.sleep(120)\n")
    big = alice.json("submit", str(workspace / "hold.py"), "--", "-g", "training", "-n", "4", "-p", "NORMAL")
    wait_until(lambda: status_of(alice, big["id"]) == "running", message="the big job to run")
    queued = alice.json("submit", str(workspace / "train.py"), "--", "-g", "training", "-n", "2", "-p", "NORMAL")
    detail = wait_until(
        lambda: (d := alice.json("status", str(queued["id"]))).get("pending") and d, message="a pending reason"
    )
    assert detail["status"] == "waiting" and detail["pending"]["message"]
    text = alice("status", str(queued["id"])).stdout
    assert "Waiting:" in text and detail["pending"]["message"] in text and detail["pending"]["code"] in text
    if detail["pending"]["queue_position"]:
        assert "Queue position:" in text

    listed = alice("list", "-s", "pending").stdout
    assert str(queued["id"]) in listed and detail["pending"]["message"][:20] in listed
    assert [r["id"] for r in alice.json("list", "-s", "active")["results"]] == [big["id"]]

    prio = alice.json("priority", str(queued["id"]), "low")
    assert (prio["priority"], prio["priority_name"]) == (0, "LOW")

    # Following a waiting job waits for it; stopping the job ends the follow with exit 2.
    alice("stop", str(queued["id"]))
    alice("logs", str(queued["id"]), "-f", expect=ExitCode.JOB_STOPPED)
    alice("stop", str(big["id"]), "--wait")


# ---- list filters and pagination, tags, stars, nodes, quota -----------------------------------


def test_list_filters_pagination_tags_and_stars(alice: Rota, workspace: Path):
    ids = []
    for name in ["a-job", "b-job", "c-job"]:
        ids.append(alice.json("submit", str(workspace / "train.py"), "--", "-g", "training", "--name", name)["id"])
    for job_id in ids:
        wait_until(lambda j=job_id: status_of(alice, j) == "succeeded", message="jobs to finish")

    tagged = alice.json("tag", "b-job", "keep", "v2")
    assert tagged["tags"] == ["keep", "v2"]
    assert alice.json("tag", "b-job", "v2", "--remove")["tags"] == ["keep"]
    assert alice.json("star", "c-job")["starred"] is True

    page1 = alice.json("list", "--page-size", "2")
    page2 = alice.json("list", "--page-size", "2", "--page", "2")
    assert page1["count"] == 3 and [r["id"] for r in page1["results"]] == [ids[2], ids[1]]
    assert [r["id"] for r in page2["results"]] == [ids[0]]
    assert [r["id"] for r in alice.json("list", "--page-size", "1", "--all")["results"]] == ids[::-1]
    assert "Jobs 1–2 of 3. Next page: add --page 2." in alice("list", "--page-size", "2").stderr
    assert [r["name"] for r in alice.json("list", "-t", "keep")["results"]] == ["b-job"]
    assert [r["name"] for r in alice.json("list", "--starred")["results"]] == ["c-job"]
    assert [r["name"] for r in alice.json("list", "--name", "a-")["results"]] == ["a-job"]
    assert [r["id"] for r in alice.json("list", "--sort", "id")["results"]] == ids
    assert alice.json("list", "-s", "failed")["results"] == []
    assert len(alice.json("list", "-s", "finished", "--since", "1h", "-g", "training")["results"]) == 3
    assert alice.json("list", "--until", "2000-01-01")["results"] == []
    assert alice("list", "-q").stdout.split() == [str(i) for i in ids[::-1]]

    result = alice("priority", "a-job", "LOW", expect=ExitCode.REFUSED)
    assert "Error: This job has finished." in result.stderr


def test_nodes_quota_images_whoami(alice: Rota):
    nodes = alice.json("nodes", "--group", "training")
    assert sorted(n["name"] for n in nodes) == ["n0", "n1", "n2", "n3"]
    text = alice("nodes")
    assert "n0" in text.stdout and "training: 4/4 ready" in text.stderr
    quota = alice.json("quota")
    high = next(r for r in quota["node"] if r["priority_name"] == "HIGH")
    assert (high["group"], high["quota"], high["used"]) == ("training", 4, 0)
    assert "training" in alice("quota").stdout
    assert [e["name"] for e in alice.json("images")] == ["default"]
    assert alice.json("whoami")["username"] == "alice-cli"
    assert "alice-cli" in alice("whoami").stdout


def test_nodes_show_which_are_busy_and_by_whom(alice: Rota, submit, workspace: Path):
    from apps.experiments.models import Rank

    write(workspace, "wait.py", "import time\ntime.sleep(120)\n")
    mine = submit(User.objects.get(username="alice-cli"), name="sleeper", entrypoint="wait.py", nodes=2)
    submit(UserFactory(username="dave"), name="not-yours", entrypoint="wait.py", nodes=1)
    wait_until(lambda: Rank.objects.filter(holds_node=True).count() == 3, message="three nodes held")

    text = alice("nodes", "-g", "training")
    rows = {line.split()[0]: line for line in text.stdout.splitlines()[1:] if line.strip()}
    jobs = sorted(" ".join(line.split()[8:12]) if "#" in line else line.split()[8] for line in rows.values())
    assert jobs == [f"#{mine.pk}.1 sleeper (alice-cli)", f"#{mine.pk}.1 sleeper (alice-cli)", "-", "busy"]
    assert "dave" not in text.stdout and "not-yours" not in text.stdout
    assert "training: 4/4 ready, 3 busy" in text.stderr
    nodes = alice.json("nodes")
    assert sum(n["busy"] for n in nodes) == 3
    assert sorted(n["holder"]["name"] or "-" for n in nodes if n["busy"]) == ["-", "sleeper", "sleeper"]
    alice("stop", str(mine.pk))
