"""The reconcile loop driving the Kubernetes backend against kmock's emulated API server: what the
launcher asks of the cluster (identity, resources) and how it reads nodes and pods back."""

from __future__ import annotations

from typing import Any

import kmock
import pytest

from apps.accounts import services as account_services
from apps.cluster.choices import NodeState
from apps.cluster.models import Node
from apps.experiments.choices import WorkerStatus
from apps.experiments.models import Attempt
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
