"""The reconcile loop driving the Kubernetes backend against kmock's emulated API server: what the
launcher asks of the cluster (identity, resources) and how it reads nodes and pods back."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import kmock
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.accounts import services as account_services
from apps.cluster import services as cluster_services
from apps.cluster.choices import NodeState
from apps.cluster.models import Node
from apps.experiments.choices import ChainStatus, StopReason, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt
from apps.launcher.backends.base import RankPhase
from apps.launcher.backends.kubernetes.status import observe_pod
from apps.launcher.reconcile import Reconciler
from tests.factories import UserFactory

from .conftest import NAMESPACE, KubeServer

pytestmark = pytest.mark.usefixtures("cluster")


def kube_node(core: Any, name: str, *, cpu: str = "64", memory: str = "512Gi", unschedulable: bool = False) -> None:
    core.create_node(
        {
            "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "capacity": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"},
                "allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": "8"},
            },
        }
    )


def set_running(core: Any, name: str) -> None:
    started = "2030-01-01T10:00:00Z"
    status = {
        "phase": "Running",
        "startTime": started,
        "containerStatuses": [
            {
                "name": "job",
                "image": "python:3.11",
                "imageID": "python@sha256:0",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            }
        ],
    }
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": status})


@pytest.fixture
def nodes(cluster: Any, core: Any) -> None:
    for i in range(4):
        kube_node(core, f"n{i}", cpu="63500m", memory="500Gi")
    Node.objects.update(cpu=64, memory_bytes=512 * 2**30)


def pod_of(kube: KubeServer, attempt: Attempt, rank: int = 0) -> dict[str, Any]:
    pod = kube.get("v1/pods", NAMESPACE, f"rota-{attempt.pk}-{rank}")
    assert pod is not None, f"no pod for rank {rank} of attempt {attempt.pk}"
    return pod


def started_attempt(submit: Any, backend: Any, user: Any, **kwargs: Any) -> Attempt:
    chain = submit(user, **kwargs)
    chain.refresh_from_db()
    Reconciler(backend).run()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "<secret>") for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.usefixtures("nodes")
def test_pods_run_as_the_owners_posix_account_with_user_and_home(kube, make_backend, submit, workspace):
    user = UserFactory(username="alice")
    account_services.user_update(actor=None, user=user, posix_uid=4201, posix_gid=4200)
    attempt = started_attempt(submit, make_backend(), user)
    pod = pod_of(kube, attempt)
    for context in (pod["spec"]["securityContext"], pod["spec"]["containers"][0]["securityContext"]):
        assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (4201, 4200, True)
    env = env_of(pod)
    assert (env["USER"], env["LOGNAME"], env["HOME"]) == ("alice", "alice", str(workspace))
    # The job runs under the init shell, so a suspend's SIGTERM reaches Python under a bash script.
    assert pod["spec"]["containers"][0]["command"][:2] == ["/bin/sh", "-c"]


@pytest.mark.usefixtures("nodes")
def test_users_without_posix_ids_keep_a_non_root_fallback_uid(kube, make_backend, submit):
    user = UserFactory(username="bob")
    attempt = started_attempt(submit, make_backend(), user)
    context = pod_of(kube, attempt)["spec"]["securityContext"]
    assert context["runAsUser"] == 10000 + user.pk
    assert "runAsGroup" not in context


@pytest.mark.usefixtures("nodes")
def test_home_comes_from_the_configured_template(kube, make_backend, submit, settings):
    settings.ROTA_KUBERNETES = {**settings.ROTA_KUBERNETES, "HOME": "/mnt/home/{user}"}
    attempt = started_attempt(submit, make_backend(), UserFactory(username="carol"))
    assert env_of(pod_of(kube, attempt))["HOME"] == "/mnt/home/carol"


GROUP_POD = {
    "tolerations": [{"key": "fabric", "operator": "Exists", "effect": "NoSchedule"}],
    "resources": {"rdma/hca_shared_devices_a": 1},
    "host_network": True,
    "memlock": True,
    "annotations": {"team": "infra", "prometheus.io/scrape": "true"},
    "env": {"NCCL_IB_HCA": "mlx5", "NCCL_DEBUG": "WARN"},
}
ENVIRONMENT_POD = {
    "runtime_class_name": "nvidia",
    "priority_class_name": "training",
    "tolerations": [{"key": "fabric", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
    "annotations": {"team": "vision"},
    "env": {"NCCL_DEBUG": "INFO"},
}


@pytest.mark.usefixtures("nodes")
def test_admins_pod_settings_per_group_and_environment_reach_the_pods(kube, make_backend, submit):
    cluster_services.node_group_upsert(actor=None, name="training", pod_settings=GROUP_POD)
    cluster_services.environment_upsert(actor=None, name="default", image="python:3.11", pod_settings=ENVIRONMENT_POD)
    # Extra volumes per environment (or group): a mount rule with that condition.
    cluster_services.mount_rule_upsert(
        actor=None,
        name="ib-conf",
        kind="configmap",
        source="ib-conf",
        container_path="/etc/ib",
        conditions={"environment": "default"},
        owner_groups=[Group.objects.get(name="public")],
    )
    user = UserFactory(username="erin")
    attempt = started_attempt(submit, make_backend(), user, nodes=2, env_vars={"NCCL_DEBUG": "TRACE"})
    for rank in (0, 1):
        pod = pod_of(kube, attempt, rank)
        spec = pod["spec"]
        # Lists are joined (without repeats), tables merged key by key, single values: the environment's.
        assert spec["tolerations"] == [
            {"key": "fabric", "operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists"},
        ]
        assert (spec["runtimeClassName"], spec["priorityClassName"]) == ("nvidia", "training")
        assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
        assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "team": "vision"}
        job = spec["containers"][0]
        assert job["resources"]["limits"]["rdma/hca_shared_devices_a"] == "1"
        assert job["resources"]["requests"]["rdma/hca_shared_devices_a"] == "1"
        assert job["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
        env = env_of(pod)
        # The environment's variables win over the group's, the job's over both, Rota's over all.
        assert (env["NCCL_IB_HCA"], env["NCCL_DEBUG"], env["RANK"]) == ("mlx5", "TRACE", str(rank))
        assert {"name": "mount-0", "mountPath": "/etc/ib", "readOnly": False} in job["volumeMounts"]
        assert {"name": "mount-0", "configMap": {"name": "ib-conf"}} in spec["volumes"]


@pytest.mark.usefixtures("nodes")
def test_pod_settings_changes_apply_to_the_next_attempt_not_running_pods(kube, make_backend, submit):
    backend = make_backend()
    user = UserFactory(username="frank")
    first = started_attempt(submit, backend, user)
    cluster_services.node_group_upsert(actor=None, name="training", pod_settings={"priority_class_name": "training"})
    Reconciler(backend).run()
    assert "priorityClassName" not in pod_of(kube, first)["spec"]
    second = started_attempt(submit, backend, user)
    assert pod_of(kube, second)["spec"]["priorityClassName"] == "training"


@pytest.mark.usefixtures("nodes")
def test_torchrun_variables_describe_the_job(kube, make_backend, submit):
    attempt = started_attempt(submit, make_backend(), UserFactory(username="dave"), nodes=2)
    for rank in (0, 1):
        env = env_of(pod_of(kube, attempt, rank))
        assert (env["PET_NNODES"], env["PET_NODE_RANK"]) == ("2", str(rank))
        assert (env["PET_NPROC_PER_NODE"], env["LOCAL_WORLD_SIZE"]) == ("8", "8")


@pytest.mark.usefixtures("nodes")
def test_requests_fit_the_nodes_allocatable_less_headroom(kube, make_backend, submit, settings):
    settings.ROTA_KUBERNETES = {**settings.ROTA_KUBERNETES, "HEADROOM_CPU": 1.5, "HEADROOM_MEMORY_BYTES": 4 * 2**30}
    attempt = started_attempt(submit, make_backend(), UserFactory(username="erin"))
    node = Node.objects.get(name="n0")
    assert (node.allocatable_cpu_millis, node.allocatable_memory_bytes) == (63500, 500 * 2**30)
    resources = pod_of(kube, attempt)["spec"]["containers"][0]["resources"]
    # 63.5 allocatable - 1.5 headroom; 500 GiB - 4 GiB: not the nominal 64 cores / 512 GiB.
    assert resources["requests"]["cpu"] == "62"
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == str(496 * 2**30)


@pytest.mark.usefixtures("nodes")
def test_allocatable_is_written_only_when_it_changes(make_backend, django_assert_num_queries):
    from apps.cluster import services as cluster_services

    assert cluster_services.node_observe_allocatable(name="n1", cpu=63.5, memory_bytes=2**30)
    with django_assert_num_queries(1):
        assert not cluster_services.node_observe_allocatable(name="n1", cpu=63.5, memory_bytes=2**30)


def test_cordoning_a_node_keeps_its_job_running_and_takes_no_new_work(kube, make_backend, core, submit):
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    user = UserFactory(username="frank")
    attempt = started_attempt(submit, backend, user, nodes=1)
    node = attempt.ranks.get().node.name
    set_running(core, f"rota-{attempt.pk}-0")
    Reconciler(backend).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING

    core.patch_node(node, {"spec": {"unschedulable": True}})
    Reconciler(backend).run()
    Reconciler(backend).run()

    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING  # not requeued, not killed
    assert Node.objects.get(name=node).state == NodeState.CORDONED
    assert kube.requests(method="DELETE", resource="pods") == []
    assert kube.get("v1/pods", NAMESPACE, f"rota-{attempt.pk}-0") is not None
    # New work goes elsewhere.
    other = started_attempt(submit, backend, user, nodes=3)
    assert node not in set(other.ranks.values_list("node__name", flat=True))
    assert not [
        r
        for r in kube.requests(action=kmock.action.CREATE, resource="pods")
        if r.data["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]["matchFields"][0]["values"]
        == [node]
        and r.data["metadata"]["name"] != f"rota-{attempt.pk}-0"
    ]


# --------------------------------------------------------------------------------------------------
# Drains, evictions, preemptions (defect 3); not-ready nodes (defect 4)


def set_pod(core: Any, name: str, *, phase: str, exit_code: int | None = None, **status: Any) -> None:
    state: dict[str, Any] = {"running": {"startedAt": "2030-01-01T10:00:00Z"}}
    if exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Error",
                "containerID": "containerd://x",
                "startedAt": "2030-01-01T10:00:00Z",
                "finishedAt": "2030-01-01T11:00:00Z",
            }
        }
    container = {"name": "job", "image": "python:3.11", "imageID": "p@sha256:0", "ready": False, "restartCount": 0}
    body = {"phase": phase, "containerStatuses": [{**container, "state": state}], **status}
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": body})


def test_an_evicted_rank_requeues_the_attempt_and_never_fails_it(kube, make_backend, core, submit):
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    attempt = started_attempt(submit, backend, UserFactory(username="gina"), nodes=2)
    for rank in (0, 1):
        set_running(core, f"rota-{attempt.pk}-{rank}")
    Reconciler(backend).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING

    # A drain evicts rank 0 (it ends on SIGTERM); rank 1 then fails on its own (NCCL lost its peer).
    eviction = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "drain"}
    set_pod(core, f"rota-{attempt.pk}-0", phase="Failed", exit_code=143, conditions=[eviction])
    set_pod(core, f"rota-{attempt.pk}-1", phase="Failed", exit_code=1)
    Reconciler(backend).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.SUSPENDING
    assert attempt.failure_message == "rank 0 ended by the cluster (EvictionByEvictionAPI: drain)"

    Reconciler(backend).run()
    attempt.refresh_from_db()
    chain = attempt.chain
    chain.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDED, SuspendReason.NODE_NOT_READY)
    assert chain.latest_attempt_id != attempt.pk  # requeued as a new attempt
    assert chain.status not in {ChainStatus.FAILED, ChainStatus.SUCCEEDED}


def test_pods_the_cluster_deletes_or_evicts_are_disruptions_ours_are_not():
    base = {"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    deleted = {**base, "metadata": {"deletionTimestamp": "2030-01-01T10:00:00Z"}}
    obs = observe_pod(0, deleted, stop_reason_annotation="rota.dev/stop-reason")
    assert (obs.phase, obs.disrupted) == (RankPhase.RUNNING, True)
    assert "not by Rota" in obs.message
    ours = {**base, "metadata": {"deletionTimestamp": "x", "annotations": {"rota.dev/stop-reason": "suspend"}}}
    assert not observe_pod(0, ours, stop_reason_annotation="rota.dev/stop-reason").disrupted
    evicted = {"metadata": {}, "spec": {}, "status": {"phase": "Failed", "reason": "Evicted", "message": "low memory"}}
    obs = observe_pod(0, evicted, stop_reason_annotation="rota.dev/stop-reason")
    assert (obs.phase, obs.disrupted, obs.message) == (
        RankPhase.KILLED,
        True,
        "ended by the cluster (Evicted: low memory)",
    )


def test_a_not_ready_node_requeues_its_job_without_force_deleting(kube, make_backend, core, submit):
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    attempt = started_attempt(submit, backend, UserFactory(username="hank"), nodes=1)
    node = attempt.ranks.get().node.name
    pod = f"rota-{attempt.pk}-0"
    core.patch_namespaced_pod(pod, NAMESPACE, {"spec": {"nodeName": node}})
    set_running(core, pod)
    Reconciler(backend).run()

    core.patch_node_status(node, {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})
    for _ in range(3):
        Reconciler(backend).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.SUSPENDED  # requeued
    assert attempt.failure_message.startswith(f"node {node} is not_ready")
    deletes = [dict(r.params) for r in kube.requests(method="DELETE", resource="pods")]
    assert deletes and all(d.get("gracePeriodSeconds") != "0" for d in deletes)


def test_the_backend_force_deletes_only_where_the_node_is_confirmed_gone(kube, make_backend, core):
    kube_node(core, "sick")
    core.patch_node_status("sick", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    backend = make_backend()
    backend.start(launch_spec(ranks=("sick", "gone", "")))
    for rank, node in ((0, "sick"), (1, "gone")):
        core.patch_namespaced_pod(f"rota-7-{rank}", NAMESPACE, {"spec": {"nodeName": node}})
        set_running(core, f"rota-7-{rank}")
    backend.stop(7)
    graces = {r.name: dict(r.params).get("gracePeriodSeconds") for r in kube.requests(method="DELETE")}
    # Not ready but there: its own grace. Gone from the cluster, or never bound: at once.
    assert graces == {"rota-7-0": "60", "rota-7-1": "0", "rota-7-2": "0"}


def launch_spec(ranks: tuple[str, ...]) -> Any:
    from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankSpec

    return LaunchSpec(
        attempt_id=7,
        chain_id="c",
        user="alice",
        uid=4201,
        workspace="/w",
        kind=EntrypointKind.PYTHON,
        entrypoint="t.py",
        parameters=(),
        interpreter="python3",
        image="python:3.11",
        ranks=tuple(RankSpec(rank=i, node=node or "n0", env={}) for i, node in enumerate(ranks)),
    )


# --------------------------------------------------------------------------------------------------
# Pending reasons and bounded start retries (defect 1)


def set_waiting(core: Any, name: str, reason: str, message: str = "") -> None:
    container = {"name": "job", "image": "python:3.11", "imageID": "", "ready": False, "restartCount": 0}
    waiting = {"waiting": {"reason": reason, "message": message}}
    body = {"phase": "Pending", "containerStatuses": [{**container, "state": waiting}]}
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": body})


def test_pending_reasons_reach_the_rank_live(kube, make_backend, core, submit):
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    attempt = started_attempt(submit, backend, UserFactory(username="ida"))
    pod = f"rota-{attempt.pk}-0"
    set_waiting(core, pod, "ContainerCreating")
    Reconciler(backend).run()
    assert attempt.ranks.get().message == "ContainerCreating"
    set_waiting(core, pod, "ImagePullBackOff", 'Back-off pulling image "python:3.11"')
    Reconciler(backend).run()
    rank = attempt.ranks.get()
    assert (rank.status, rank.message) == ("pending", 'ImagePullBackOff: Back-off pulling image "python:3.11"')


def test_a_slow_image_pull_is_given_time_an_image_pull_error_is_not(kube, make_backend, core, submit, settings):
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "START_TIMEOUT_SECONDS": 0.0, "PULL_TIMEOUT_SECONDS": 600.0}
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    attempt = started_attempt(submit, backend, UserFactory(username="jo"))
    set_waiting(core, f"rota-{attempt.pk}-0", "ContainerCreating")
    Reconciler(backend).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.STARTING  # progressing: waits past the start timeout
    later = attempt.scheduled_at + timedelta(seconds=601)
    Reconciler(backend, now=later).run()
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDED, SuspendReason.UNSCHEDULABLE)
    assert attempt.failure_message == "did not start in time (rank 0: ContainerCreating)"


def test_image_pull_errors_are_retried_a_bounded_number_of_times_then_fail_the_chain(
    kube, make_backend, core, submit, settings
):
    settings.ROTA_LAUNCHER = {
        **settings.ROTA_LAUNCHER,
        "START_TIMEOUT_SECONDS": 0.0,
        "START_RETRIES": 2,
        "START_RETRY_BACKOFF_SECONDS": 0.0,  # (the back-off has its own test)
    }
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    first = started_attempt(submit, backend, UserFactory(username="kim"))
    chain = first.chain
    set_waiting(core, f"rota-{first.pk}-0", "ImagePullBackOff", "no such image")
    Reconciler(backend).run()
    first.refresh_from_db()
    assert (first.worker_status, first.suspend_reason) == (WorkerStatus.SUSPENDED, SuspendReason.UNSCHEDULABLE)
    assert first.failure_message == "did not start in time (rank 0: ImagePullBackOff: no such image)"

    chain.refresh_from_db()
    second = Attempt.objects.get(pk=chain.latest_attempt_id)
    assert second.pk != first.pk
    Reconciler(backend).run()  # starts the second attempt's pod
    set_waiting(core, f"rota-{second.pk}-0", "ImagePullBackOff", "no such image")
    Reconciler(backend).run()
    second.refresh_from_db()
    chain.refresh_from_db()
    assert (second.worker_status, second.stop_reason) == (WorkerStatus.FAILED, StopReason.START_FAILED)
    assert second.failure_message == (
        "did not start in time (rank 0: ImagePullBackOff: no such image); gave up after 2 attempts"
    )
    assert chain.status == ChainStatus.FAILED


def test_start_retries_back_off_exponentially_up_to_the_cap_and_say_so(kube, make_backend, core, submit, settings):
    from apps.scheduler.driver import run_pass

    settings.ROTA_LAUNCHER = {
        **settings.ROTA_LAUNCHER,
        "START_TIMEOUT_SECONDS": 0.0,
        "START_RETRIES": 4,
        "START_RETRY_BACKOFF_SECONDS": 30.0,
        "START_RETRY_BACKOFF_MAX_SECONDS": 50.0,
    }
    for i in range(4):
        kube_node(core, f"n{i}")
    backend = make_backend()
    attempt = started_attempt(submit, backend, UserFactory(username="max"))
    chain = attempt.chain
    waits = []
    for retry in (1, 2, 3):
        set_waiting(core, f"rota-{attempt.pk}-0", "ImagePullBackOff", "no such image")
        now = timezone.now()
        Reconciler(backend, now=now).run()
        chain.refresh_from_db()
        nxt = Attempt.objects.get(pk=chain.latest_attempt_id)
        assert nxt.index == retry
        waits.append((nxt.not_before - now).total_seconds())
        left = 4 - retry
        assert (nxt.worker_status, nxt.pending_code) == (WorkerStatus.QUEUED, "retry_backoff")
        assert nxt.pending_message == (
            "The last attempt did not start in time (rank 0: ImagePullBackOff: no such image)."
            f" Retrying at {nxt.not_before:%H:%M:%S} UTC (waiting {int(waits[-1])} s;"
            f" {left} more {'retry' if left == 1 else 'retries'} before the job fails)."
        )
        # The scheduler leaves it alone until then, and its reason stays on the job...
        run_pass(now=nxt.not_before - timedelta(seconds=1))
        nxt.refresh_from_db()
        assert (nxt.worker_status, nxt.pending_code) == (WorkerStatus.QUEUED, "retry_backoff")
        # ...then schedules it.
        run_pass(now=nxt.not_before + timedelta(seconds=1))
        nxt.refresh_from_db()
        assert nxt.worker_status == WorkerStatus.STARTING
        Reconciler(backend).run()  # its pod
        attempt = nxt
    assert waits == [30.0, 50.0, 50.0]  # 30, 60 capped at 50, 120 capped at 50


# --------------------------------------------------------------------------------------------------
# The watchdog after a restart (defect 2)


def test_the_watchdog_reads_output_from_the_log_store_after_a_restart(kube, make_backend, core, submit):
    from apps.logs.store import get_log_store

    for i in range(4):
        kube_node(core, f"n{i}")
    attempt = started_attempt(submit, make_backend(), UserFactory(username="lee"))
    set_running(core, f"rota-{attempt.pk}-0")
    Reconciler(make_backend()).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING
    # The job has run for two hours and logged a minute ago; then the worker restarted.
    now = attempt.started_at + timedelta(hours=2)
    get_log_store().append_lines(str(attempt.chain_id), attempt.pk, 0, ["step 7200"])
    log_path = get_log_store().path(str(attempt.chain_id), attempt.pk, 0)
    os.utime(log_path, (now.timestamp() - 60, now.timestamp() - 60))
    restarted = make_backend()
    assert restarted.last_output_at(attempt.pk) is None

    Reconciler(restarted, now=now).run()
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING  # not stopped as hung

    Reconciler(restarted, now=now + timedelta(hours=1)).run()  # and the watchdog still works
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.stop_reason) == (WorkerStatus.STOPPING, StopReason.HUNG)


#: The issue's scale. kmock serves each *create* in time growing with its object count, so the pods
#: and Services are put straight into the emulator (as tests/launcher_k8s/test_kubernetes_backend.py
#: does); the jobs are rows. What is measured — the API calls of the launcher's real reconcile
#: pass — goes through HTTP as in production.
PODS = 1000


@pytest.mark.usefixtures("nodes")
def test_a_reconcile_pass_over_1000_running_pods_makes_a_bounded_number_of_api_calls(
    kube: KubeServer, make_backend: Any, pod_watch: Any, node_watch: Any, workspace: Any
) -> None:
    from apps.cluster.models import NodeGroup
    from apps.experiments.choices import QueueStatus, RankStatus
    from apps.experiments.models import Chain, Rank

    from .conftest import wait_until

    owner = UserFactory(username="olga")
    group = NodeGroup.objects.get(name="training")
    nodes = list(Node.objects.order_by("name"))
    now = timezone.now()
    chains = Chain.objects.bulk_create(
        Chain(
            owner=owner,
            name=f"job-{i}",
            workspace=str(workspace),
            entrypoint="train.py",
            node_group=group,
            node_count=1,
            priority=10,
            environment_name="",
            status=ChainStatus.RUNNING,
        )
        for i in range(PODS)
    )
    attempts = Attempt.objects.bulk_create(
        Attempt(
            chain=chain,
            index=0,
            priority=10,
            effective_priority=10,
            quota_priority=10,
            queue_status=QueueStatus.SCHEDULED,
            worker_status=WorkerStatus.RUNNING,
            scheduled_at=now,
            started_at=now,
        )
        for chain in chains
    )
    for chain, attempt in zip(chains, attempts, strict=True):
        chain.latest_attempt = attempt
    Chain.objects.bulk_update(chains, ["latest_attempt"])
    Rank.objects.bulk_create(
        Rank(attempt=a, rank=0, node=nodes[i % len(nodes)], holds_node=False, status=RankStatus.RUNNING)
        for i, a in enumerate(attempts)
    )
    started = "2030-01-01T10:00:00Z"
    running = {
        "phase": "Running",
        "startTime": started,
        "containerStatuses": [{"name": "job", "ready": True, "state": {"running": {"startedAt": started}}}],
    }

    def seed() -> None:
        for i, attempt in enumerate(attempts):
            meta = {"namespace": NAMESPACE, "uid": f"uid-{attempt.pk}", "resourceVersion": "1"}
            labels = {"rota.dev/attempt": str(attempt.pk)}
            kube.emulator.objects["v1/pods", NAMESPACE, f"rota-{attempt.pk}-0"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**meta, "name": f"rota-{attempt.pk}-0", "labels": {**labels, "rota.dev/rank": "0"}},
                "spec": {"containers": [], "nodeName": nodes[i % len(nodes)].name},
                "status": running,
            }
            kube.emulator.objects["v1/services", NAMESPACE, f"rota-{attempt.pk}"] = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {**meta, "name": f"rota-{attempt.pk}", "labels": labels},
                "spec": {"clusterIP": "None"},
            }

    kube.call(seed)
    # As the worker runs it: informers on, relisting every 10 minutes (no log journal: the log
    # streams are the followers', not the pass's).
    backend = make_backend(relist_interval=600.0)
    backend.start_watching()
    assert backend.wait_synced(30)
    wait_until(lambda: pod_watch.opened == 1 and node_watch.opened == 1, what="both watches open")

    def one_pass() -> tuple[int, Any]:
        before = len(kube.requests())
        result = Reconciler(backend).run()
        return len(kube.requests()) - before, result

    calls, result = one_pass()
    # Every job is seen running and left alone: nothing started, stopped or released.
    assert Attempt.objects.filter(worker_status=WorkerStatus.RUNNING).count() == PODS
    assert (result.started, result.running) == ([], [])  # already running: no transition to report
    assert (result.finished, result.requeued, result.killed, result.cleaned) == ({}, {}, [], [])
    assert calls == 1  # the Services, listed once per relist interval; pods and nodes are the informers'
    assert [one_pass()[0] for _ in range(2)] == [0, 0]  # then nothing until the next relist
