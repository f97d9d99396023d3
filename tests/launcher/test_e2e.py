"""Real processes on the embedded profile: submit → run → logs; preemption with checkpoint and
resume; grace expiry; go_suspend; failing ranks; disabled nodes; crashes of the reconcile worker."""

from __future__ import annotations

import textwrap

import pytest

from apps.cluster import services as cluster_services
from apps.experiments import lifecycle, services
from apps.experiments.choices import ChainStatus, StopReason, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Chain, Rank
from apps.launcher import reconcile as reconcile_module
from apps.launcher.backends import get_backend
from apps.logs.store import get_log_store
from tests.conftest import wait_until
from tests.factories import UserFactory

pytestmark = pytest.mark.slow


def write(workspace, name: str, code: str) -> str:
    (workspace / name).write_text(textwrap.dedent(code))
    return name


def chain_status(chain: Chain) -> str:
    chain.refresh_from_db()
    return chain.status


def latest(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def log_of(chain: Chain, rank: int, attempt: Attempt | None = None) -> str:
    attempt = attempt or latest(chain)
    return get_log_store().read(str(chain.pk), attempt.pk, rank, 0, 1 << 20).data


def test_two_node_job_runs_with_the_contract_and_succeeds(platform, cluster, submit, workspace):
    user = UserFactory(username="e2e-a")
    write(
        workspace,
        "env.py",
        """
        import os
        for k in ["WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "ROTA_CHAIN_ID", "ROTA_NB_NAME",
                  "ROTA_WHOLE_LIFE_STATE", "MARSV2_RANK", "MARSV2_NB_NAME", "ROTA_API_URL"]:
            print(k, "=", os.environ[k])
        print("token set:", bool(os.environ["ROTA_TASK_TOKEN"]))
        print("cwd", os.getcwd())
    """,
    )
    chain = submit(user, name="two-node", entrypoint="env.py", nodes=2, priority="NORMAL")
    wait_until(lambda: chain_status(chain) == ChainStatus.SUCCEEDED, message="job to succeed")
    attempt = latest(chain)
    assert attempt.exit_code == 0
    nodes = list(Rank.objects.filter(attempt=attempt).order_by("rank").values_list("node__name", flat=True))
    assert len(set(nodes)) == 2
    for rank in (0, 1):
        log = log_of(chain, rank)
        assert f"RANK = {rank}" in log and f"MARSV2_RANK = {rank}" in log
        assert "WORLD_SIZE = 2" in log and "MASTER_ADDR = 127.0.0.1" in log
        assert f"ROTA_CHAIN_ID = {chain.pk}" in log and "ROTA_NB_NAME = two-node" in log
        assert f"ROTA_API_URL = {platform.url}" in log
        assert "token set: True" in log and f"cwd {workspace}" in log
        assert log.startswith("[20")  # every line timestamped
    assert not Rank.objects.filter(holds_node=True).exists()


CHECKPOINTING = """
    import os
    import time
    from rota import job

    lead = os.environ["RANK"] == "0"  # rank 0 owns the chain's state, as in a real trainer
    state = job.get_whole_life_state()
    print("start from", state, flush=True)
    step = state
    while True:
        step += 1
        time.sleep(0.05)
        if step % 5 == 0 and lead:
            job.set_whole_life_state(step)
            job.report_checkpoint()
            job.log_metrics(step, loss=1.0 / step)
        if step >= state + 40 and state > 0:
            print("finished at", step, flush=True)
            break
        if job.receive_suspend_command(poll=False):
            if lead:
                job.set_whole_life_state(step)
            print("suspending at", step, flush=True)
            job.go_suspend()
"""


def test_preempted_job_checkpoints_requeues_and_resumes_with_its_state(platform, cluster, submit, workspace):
    low_user, high_user = UserFactory(username="e2e-low"), UserFactory(username="e2e-high")
    write(workspace, "ckpt.py", CHECKPOINTING)
    write(workspace, "quick.py", "print('high priority work')\n")
    victim = submit(low_user, name="victim", entrypoint="ckpt.py", nodes=4, priority="LOW")
    wait_until(
        lambda: chain_status(victim) == ChainStatus.RUNNING and "start from 0" in log_of(victim, 0),
        message="victim running",
    )
    wait_until(lambda: latest(victim).last_checkpoint_at is not None, message="a checkpoint")
    first = latest(victim)
    winner = submit(high_user, name="winner", entrypoint="quick.py", nodes=2, priority="HIGH")
    wait_until(lambda: chain_status(winner) == ChainStatus.SUCCEEDED, timeout=30, message="preemptor to run")
    first.refresh_from_db()
    assert (first.worker_status, first.suspend_reason) == (WorkerStatus.SUSPENDED, SuspendReason.PREEMPTED)
    suspended_at = int(log_of(victim, 0, first).split("suspending at")[1].split()[0])
    assert first.whole_life_state == suspended_at, log_of(victim, 0, first)
    # The victim's chain was requeued and resumes from its state once the nodes are free.
    wait_until(lambda: chain_status(victim) == ChainStatus.SUCCEEDED, timeout=30, message="victim to finish")
    second = latest(victim)
    assert second.index == 1 and second.whole_life_state >= suspended_at
    assert f"start from {suspended_at}" in log_of(victim, 0, second)
    metrics = platform_get(platform, low_user, f"/api/v1/experiments/{victim.pk}/metrics/")
    assert {p["attempt_id"] for p in metrics["series"]["loss"]} == {first.pk, second.pk}


def platform_get(platform, user, path: str) -> dict:
    import httpx

    from apps.accounts.services import token_create

    raw = token_create(actor=user, name="e2e").raw
    response = httpx.get(platform.url + path, headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_grace_expiry_kills_a_job_that_ignores_the_notice(platform, cluster, submit, workspace, settings):
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "GRACE_SECONDS": 1.0}
    user = UserFactory(username="e2e-stubborn")
    write(
        workspace,
        "stubborn.sh",
        """
        trap 'echo got SIGTERM, ignoring' TERM
        echo started
        while true; do sleep 0.1; done
    """,
    )
    chain = submit(user, name="stubborn", kind="bash", entrypoint="stubborn.sh", nodes=1)
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING and "started" in log_of(chain, 0), message="running")
    attempt = latest(chain)
    services.experiment_suspend(actor=user, chain=chain)
    wait_until(lambda: chain_status(chain) == ChainStatus.HELD, timeout=20, message="killed after the grace")
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.SUSPENDED
    assert "got SIGTERM, ignoring" in log_of(chain, 0, attempt)
    assert (attempt.finished_at - attempt.suspend_requested_at).total_seconds() >= 1.0
    assert not Rank.objects.filter(holds_node=True).exists()


def test_go_suspend_frees_the_nodes_at_once(platform, cluster, submit, workspace, settings):
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "GRACE_SECONDS": 120.0}
    user = UserFactory(username="e2e-polite")
    write(
        workspace,
        "polite.py",
        """
        import time
        from rota import job
        print("up", flush=True)
        while not job.receive_suspend_command(poll=False):
            time.sleep(0.05)
        job.set_whole_life_state(11)
        job.go_suspend()
    """,
    )
    chain = submit(user, name="polite", entrypoint="polite.py", nodes=2)
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING and "up" in log_of(chain, 0), message="running")
    attempt = latest(chain)
    services.experiment_suspend(actor=user, chain=chain)
    wait_until(lambda: chain_status(chain) == ChainStatus.HELD, timeout=15, message="suspended well before 120 s")
    attempt.refresh_from_db()
    assert (attempt.finished_at - attempt.suspend_requested_at).total_seconds() < 10
    assert latest(chain).whole_life_state == 11
    services.experiment_resume(actor=user, chain=chain)
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING, message="resumed")


def test_failing_rank_fails_the_job_and_stops_the_others(platform, cluster, submit, workspace):
    user = UserFactory(username="e2e-fail")
    write(
        workspace,
        "fail.py",
        """
        import os, sys, time
        if os.environ["RANK"] == "1":
            print("rank 1 crashing", flush=True)
            sys.exit(3)
        print("rank 0 waiting", flush=True)
        time.sleep(600)
    """,
    )
    chain = submit(user, name="failing", entrypoint="fail.py", nodes=2)
    wait_until(lambda: chain_status(chain) == ChainStatus.FAILED, timeout=30, message="job failed")
    attempt = latest(chain)
    assert (attempt.stop_reason, attempt.exit_code) in {(StopReason.RANK_FAILED, 3), (StopReason.START_FAILED, 3)}
    assert "rank 1 exited with code 3" in attempt.failure_message
    backend = get_backend()
    wait_until(lambda: all(o.phase.is_final for o in backend.observe(attempt.pk).values()), message="rank 0 stopped")
    assert not Rank.objects.filter(holds_node=True).exists()


def test_disabled_node_requeues_its_jobs(platform, cluster, submit, workspace, admin_user):
    user = UserFactory(username="e2e-node")
    write(workspace, "long.sh", "echo working; sleep 600\n")
    chain = submit(user, name="on-bad-node", kind="bash", entrypoint="long.sh", nodes=1)
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING, message="running")
    attempt = latest(chain)
    node = Rank.objects.get(attempt=attempt).node
    cluster_services.node_disable(actor=admin_user, node=node, reason="ECC errors")
    wait_until(lambda: latest(chain).index == 1, message="requeued")
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDED, SuspendReason.NODE_NOT_READY)
    assert "ECC errors" in attempt.failure_message
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING, message="running again elsewhere")
    assert Rank.objects.get(attempt=latest(chain)).node_id != node.pk


def test_a_crashed_rank_supervisor_requeues_the_job_instead_of_failing_it(platform, cluster, submit, workspace):
    """kill -9 of a rank's supervisor and then of its job (what the OOM killer can do) is not the
    job's failure: the attempt is requeued and the job runs again."""
    import os
    import signal

    from apps.launcher.rank_supervisor import read_state

    user = UserFactory(username="e2e-crash")
    write(workspace, "long.sh", "echo working; sleep 600\n")
    chain = submit(user, name="supervisor-crash", kind="bash", entrypoint="long.sh", nodes=1)
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING, message="running")
    attempt = latest(chain)
    backend = get_backend()

    def started():
        state = read_state(backend.run_dir(attempt.pk), 0)
        return state if state is not None and state.child_pid else None

    state = wait_until(started, message="the rank's state with its job's pid")
    supervisor, child = state.supervisor(), state.child()
    assert supervisor is not None and child is not None and state.child_pgid is not None
    os.kill(supervisor.pid, signal.SIGKILL)
    wait_until(lambda: not supervisor.is_alive(), message="the supervisor to die")
    os.killpg(state.child_pgid, signal.SIGKILL)
    wait_until(lambda: latest(chain).index == 1, message="requeued")
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDED, SuspendReason.NODE_NOT_READY)
    assert attempt.stop_reason == ""
    wait_until(lambda: chain_status(chain) == ChainStatus.RUNNING, message="running again")


def test_reconcile_crash_mid_start_then_restart_starts_nothing_twice(
    cluster, submit, workspace, settings, tmp_path, monkeypatch
):
    settings.ROTA_BACKEND = "local"
    settings.ROTA_RUN_ROOT = tmp_path / "run"
    settings.ROTA_LOG_ROOT = tmp_path / "logs"
    from apps.launcher.backends import reset_backend

    reset_backend()
    user = UserFactory(username="e2e-crash")
    write(workspace, "count.sh", 'echo started >> "$ROTA_LOG_DIR/../../starts-$RANK"; sleep 600\n')
    chain = submit(user, name="crashy", kind="bash", entrypoint="count.sh", nodes=2)
    attempt = latest(chain)
    assert attempt.worker_status == WorkerStatus.STARTING

    def crash(*args, **kwargs):
        raise SystemExit("reconcile worker killed")

    # The worker dies right after the backend started the ranks, before recording anything.
    monkeypatch.setattr(reconcile_module, "_record_ranks", crash)
    with pytest.raises(SystemExit):
        reconcile_module.Reconciler(get_backend())._one(
            Attempt.objects.prefetch_related("ranks__node")
            .select_related("chain__owner", "chain__node_group", "chain__environment")
            .get(pk=attempt.pk)
        )
    assert latest(chain).worker_status == WorkerStatus.STARTING
    monkeypatch.undo()
    # A new worker (fresh backend object, as after a restart) adopts the running ranks.
    reset_backend()
    wait_until(
        lambda: (reconcile_module.reconcile(), latest(chain).worker_status)[1] == WorkerStatus.RUNNING,
        message="adopted and running",
    )
    starts = sorted(p.name for p in (tmp_path / "logs").glob("starts-*"))
    assert starts == ["starts-0", "starts-1"]
    assert all((tmp_path / "logs" / s).read_text().count("started") == 1 for s in starts)

    # Now crash mid-suspend: the notice was delivered, then the worker died. The request runs a
    # pass right after commit (inline task runner); on a loaded machine the ranks may already be
    # gone within that pass, so the crash is armed before the request and may come from it.
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "GRACE_SECONDS": 0.5}
    monkeypatch.setattr(reconcile_module.lifecycle, "attempt_mark_suspended", crash)

    def request_then_reconcile() -> None:
        lifecycle.attempt_request_suspend(attempt_id=attempt.pk, reason=SuspendReason.ADMIN)
        wait_until(lambda: reconcile_module.reconcile() and False, timeout=30, message="crash")

    with pytest.raises(SystemExit):
        request_then_reconcile()
    assert latest(chain).worker_status == WorkerStatus.SUSPENDING  # the crash left it half-way
    monkeypatch.undo()
    reset_backend()
    wait_until(lambda: (reconcile_module.reconcile(), latest(chain).index)[1] == 1, message="suspend finished")
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.SUSPENDED
    assert Attempt.objects.filter(chain=chain).count() == 2  # exactly one new attempt
    backend = get_backend()
    for attempt_id in backend.known_attempts():
        backend.stop(attempt_id)
    reset_backend()


def test_example_training_job_checkpoints_and_resumes(platform, cluster, submit, workspace):
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "train_checkpoint.py", workspace / "example.py")
    user = UserFactory(username="e2e-example")
    chain = submit(
        user,
        name="example",
        entrypoint="example.py",
        nodes=2,
        parameters=["--steps", "400", "--every", "5", "--step-seconds", "0.02"],
    )
    wait_until(lambda: "step 10 " in log_of(chain, 0), message="first checkpoints")
    services.experiment_suspend(actor=user, chain=chain)
    wait_until(lambda: chain_status(chain) == ChainStatus.HELD, message="suspended")
    first = Attempt.objects.get(chain=chain, index=0)
    assert "suspend requested at step" in log_of(chain, 0, first)
    saved = first.whole_life_state
    assert saved >= 10
    services.experiment_resume(actor=user, chain=chain)
    wait_until(lambda: f"resuming from step {saved}" in log_of(chain, 0), message="resumed from the checkpoint")
    services.experiment_stop(actor=user, chain=chain)
    wait_until(lambda: chain_status(chain) == ChainStatus.STOPPED, message="stopped")


def test_a_running_job_stopped_as_succeeded_ends_succeeded(platform, cluster, submit, workspace):
    user = UserFactory(username="e2e-marked")
    write(
        workspace,
        "forever.py",
        """
        import time
        print("up", flush=True)
        while True:
            time.sleep(0.2)
    """,
    )
    chain = submit(user, name="marked", entrypoint="forever.py")
    wait_until(lambda: "up" in log_of(chain, 0), message="the job to print")
    services.experiment_stop(actor=user, chain=chain, outcome=WorkerStatus.SUCCEEDED)
    wait_until(lambda: chain_status(chain) == ChainStatus.SUCCEEDED, message="job to end succeeded")
    attempt = latest(chain)
    assert (attempt.worker_status, attempt.stop_reason) == (WorkerStatus.SUCCEEDED, StopReason.MARKED_SUCCEEDED)
    assert not Rank.objects.filter(holds_node=True).exists()
