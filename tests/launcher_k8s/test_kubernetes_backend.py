"""KubernetesBackend against kmock's emulator, through the real ``kubernetes`` client over HTTP.

What the emulator cannot do is scripted (see conftest): watch streams and pod log follows. Nothing
sleeps for a fixed time: tests wait on conditions with a timeout.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import kmock
import kubernetes_validate
import pytest
from kubernetes import client

from apps.launcher.backends.base import (
    EntrypointKind,
    LaunchSpec,
    MountSpec,
    NodeObservation,
    PodOptions,
    RankObservation,
    RankPhase,
    RankSpec,
)
from apps.launcher.backends.kubernetes import (
    INIT_BOOT,
    INIT_SCRIPT,
    KubernetesBackend,
    LogCursor,
    LogLineSplitter,
    normalize_capabilities,
    parse_log_timestamp,
    sanitize_label_key,
    sanitize_label_value,
)

from .conftest import NAMESPACE, KubeServer, StreamScript, wait_until

MakeBackend = Callable[..., KubernetesBackend]
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp")


def make_spec(attempt_id: int = 7, ranks: int = 2, **overrides: Any) -> LaunchSpec:
    rank_specs = tuple(
        RankSpec(
            rank=r,
            node=f"gpu-node-{r + 1}",
            env={
                "WORLD_SIZE": str(ranks),
                "RANK": str(r),
                "MASTER_ADDR": "localhost",  # what the launcher computed; the backend's value wins
                "ROTA_TASK_ID": str(attempt_id),
                "ROTA_CHAIN_ID": "chain-abc",
                "ROTA_TASK_TOKEN": f"secret-token-{attempt_id}",
                "MARSV2_RANK": str(r),
                "CUDA_VISIBLE_DEVICES": "0,1",
                "NVIDIA_VISIBLE_DEVICES": "all",
            },
            gpus=(0, 1),
        )
        for r in range(ranks)
    )
    values: dict[str, Any] = {
        "attempt_id": attempt_id,
        "chain_id": "chain-abc",
        "user": "alice",
        "uid": 1234,
        "workspace": "/home/alice/proj",
        "kind": EntrypointKind.PYTHON,
        "entrypoint": "train.py",
        "parameters": ("--lr", "0.1"),
        "interpreter": "/usr/bin/python3",
        "image": "registry.example/train:1",
        "ranks": rank_specs,
        "gpus_per_rank": 8,
    }
    values.update(overrides)
    return LaunchSpec(**values)


def without_server_fields(obj: dict[str, Any] | None) -> dict[str, Any]:
    assert obj is not None
    obj = dict(obj)
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in SERVER_FIELDS}
    return obj


def set_pod_status(core: client.CoreV1Api, name: str, status: dict[str, Any]) -> None:
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": status})


def container(state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    """A container status as the kubelet reports it (the typed client insists on these fields)."""
    return {
        "name": "job",
        "image": "registry.example/train:1",
        "imageID": "registry.example/train@sha256:0",
        "ready": ready,
        "restartCount": 0,
        "state": state,
    }


def running(started: str = "2030-01-01T10:00:00Z") -> dict[str, Any]:
    return {
        "phase": "Running",
        "startTime": started,
        "containerStatuses": [container({"running": {"startedAt": started}}, ready=True)],
    }


def terminated(phase: str, exit_code: int, reason: str) -> dict[str, Any]:
    state = {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "containerID": "containerd://x",
            "startedAt": "2030-01-01T10:00:00Z",
            "finishedAt": "2030-01-01T11:00:00Z",
        }
    }
    return {"phase": phase, "containerStatuses": [container(state)]}


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def count(kube: KubeServer, **criteria: Any) -> int:
    return len(kube.requests(**criteria))


# --------------------------------------------------------------------------------------------------
# Objects created


def test_start_creates_exactly_the_service_secret_and_pods(kube: KubeServer, make_backend: MakeBackend) -> None:
    backend = make_backend(image_pull_secrets=("regcred",))
    spec = make_spec(
        cpu=15.5,
        memory_bytes=64 * 2**30,
        mounts=(
            MountSpec("host_path", "/mnt/datasets", "/data", read_only=True),
            MountSpec("pvc", "alice-home", "/home/alice", read_only=False),
            MountSpec("configmap", "hosts-cfg", "/etc/rota", read_only=True),
        ),
        labels={"team": "vision lab", "kubernetes.io/evil": "x", "rota.dev/attempt": "999", "Exp/Name": "A B"},
        gid=4200,
    )
    backend.start(spec)

    # The Service first (it owns everything), then the Secret, then one pod per rank.
    created = [(r.resource.plural, r.data["metadata"]["name"]) for r in kube.requests(action=kmock.action.CREATE)]
    assert created == [("services", "rota-7"), ("secrets", "rota-7-env"), ("pods", "rota-7-0"), ("pods", "rota-7-1")]

    attempt_labels = {"rota.dev/attempt": "7", "rota.dev/chain": "chain-abc", "rota.dev/user": "alice"}
    service = kube.get("v1/services", NAMESPACE, "rota-7")
    assert without_server_fields(service) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "rota-7", "namespace": NAMESPACE, "labels": attempt_labels},
        "spec": {
            "clusterIP": "None",
            "selector": {"rota.dev/attempt": "7"},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "master", "port": 29500, "targetPort": 29500, "protocol": "TCP"}],
        },
    }
    assert service is not None
    owner = [{"apiVersion": "v1", "kind": "Service", "name": "rota-7", "uid": service["metadata"]["uid"]}]

    secret = kube.get("v1/secrets", NAMESPACE, "rota-7-env")
    assert without_server_fields(secret) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "rota-7-env", "namespace": NAMESPACE, "labels": attempt_labels, "ownerReferences": owner},
        "type": "Opaque",
        "immutable": True,
        "data": {
            "0.ROTA_TASK_TOKEN": base64.b64encode(b"secret-token-7").decode(),
            "1.ROTA_TASK_TOKEN": base64.b64encode(b"secret-token-7").decode(),
        },
    }

    for rank in (0, 1):
        pod = kube.get("v1/pods", NAMESPACE, f"rota-7-{rank}")
        assert without_server_fields(pod) == {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"rota-7-{rank}",
                "namespace": NAMESPACE,
                "labels": {
                    "exp/Name": "A-B",
                    "rota.dev/attempt": "7",
                    "rota.dev/chain": "chain-abc",
                    "rota.dev/rank": str(rank),
                    "rota.dev/user": "alice",
                    "team": "vision-lab",
                },
                "ownerReferences": owner,
            },
            "spec": {
                "hostname": f"rota-7-{rank}",
                "subdomain": "rota-7",
                "restartPolicy": "Never",
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {"key": "metadata.name", "operator": "In", "values": [f"gpu-node-{rank + 1}"]}
                                    ]
                                }
                            ]
                        }
                    }
                },
                "terminationGracePeriodSeconds": 60,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "hostNetwork": False,
                "hostPID": False,
                "hostIPC": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1234,
                    "runAsGroup": 4200,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "imagePullSecrets": [{"name": "regcred"}],
                "containers": [
                    {
                        "name": "job",
                        "image": "registry.example/train:1",
                        "command": [
                            "/bin/sh",
                            "-c",
                            INIT_BOOT,
                            INIT_SCRIPT,
                            "/usr/bin/python3",
                            "-u",
                            "train.py",
                            "--lr",
                            "0.1",
                        ],
                        "workingDir": "/home/alice/proj",
                        "env": [
                            {"name": "HOME", "value": "/home/alice/proj"},
                            {"name": "LOGNAME", "value": "alice"},
                            {"name": "MARSV2_RANK", "value": str(rank)},
                            {"name": "MASTER_ADDR", "value": f"rota-7-0.rota-7.{NAMESPACE}.svc"},
                            {"name": "MASTER_PORT", "value": "29500"},
                            {"name": "RANK", "value": str(rank)},
                            {"name": "ROTA_CHAIN_ID", "value": "chain-abc"},
                            {"name": "ROTA_TASK_ID", "value": "7"},
                            {
                                "name": "ROTA_TASK_TOKEN",
                                "valueFrom": {"secretKeyRef": {"name": "rota-7-env", "key": f"{rank}.ROTA_TASK_TOKEN"}},
                            },
                            {"name": "USER", "value": "alice"},
                            {"name": "WORLD_SIZE", "value": "2"},
                        ],
                        "resources": {
                            "requests": {"cpu": "15500m", "memory": str(64 * 2**30), "nvidia.com/gpu": "8"},
                            "limits": {"memory": str(64 * 2**30), "nvidia.com/gpu": "8"},
                        },
                        "volumeMounts": [
                            {"name": "mount-0", "mountPath": "/data", "readOnly": True},
                            {"name": "mount-1", "mountPath": "/home/alice", "readOnly": False},
                            {"name": "mount-2", "mountPath": "/etc/rota", "readOnly": True},
                            {"name": "dshm", "mountPath": "/dev/shm", "readOnly": False},
                        ],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 1234,
                            "runAsGroup": 4200,
                            "allowPrivilegeEscalation": False,
                            "privileged": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
                "volumes": [
                    {"name": "mount-0", "hostPath": {"path": "/mnt/datasets"}},
                    {"name": "mount-1", "persistentVolumeClaim": {"claimName": "alice-home", "readOnly": False}},
                    {"name": "mount-2", "configMap": {"name": "hosts-cfg"}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                ],
            },
        }
    # The token is nowhere in the pods.
    assert all("secret-token" not in r.text for r in kube.requests(resource="pods"))


@pytest.mark.parametrize(
    ("kind", "entrypoint", "expected"),
    [
        (EntrypointKind.PYTHON, "train.py", ["/usr/bin/python3", "-u", "train.py", "--lr", "0.1"]),
        (EntrypointKind.BASH, "run.sh", ["bash", "run.sh", "--lr", "0.1"]),
        (EntrypointKind.EXECUTABLE, "/opt/bin/trainer", ["/opt/bin/trainer", "--lr", "0.1"]),
    ],
)
def test_command_per_entrypoint_kind(
    make_backend: MakeBackend, kind: EntrypointKind, entrypoint: str, expected: list[str]
) -> None:
    pod = make_backend().manifests.build_pod(make_spec(kind=kind, entrypoint=entrypoint), make_spec().ranks[0], "uid-1")
    # The job runs under the init shell, which forwards signals to its whole process group.
    assert pod["spec"]["containers"][0]["command"] == ["/bin/sh", "-c", INIT_BOOT, INIT_SCRIPT, *expected]


def test_the_init_process_hands_a_suspend_signal_to_python_under_a_bash_entrypoint(
    make_backend: MakeBackend, tmp_path: Any
) -> None:
    """The pod's command for real: ``bash run.sh`` whose Python traps SIGTERM to write a checkpoint.
    A bash that waits for a child does not pass SIGTERM on; the init process sends it to the whole
    job, and exits (which in a pod kills whatever is left) only once the checkpoint is written,
    though the bash script itself dies of the signal at once."""
    import subprocess
    import sys

    (tmp_path / "run.sh").write_text(
        f"{sys.executable} -c '"
        "import pathlib, signal, sys, time\n"
        "def term(*_):\n"
        '    time.sleep(1); pathlib.Path("checkpoint").write_text("TERM"); sys.exit(3)\n'
        "signal.signal(signal.SIGTERM, term)\n"
        'pathlib.Path("ready").write_text("")\n'
        "while True: time.sleep(0.05)\n"
        "'\n"
    )
    spec = make_spec(kind=EntrypointKind.BASH, entrypoint="run.sh", parameters=())
    command = make_backend().manifests.build_pod(spec, spec.ranks[0], "uid-1")["spec"]["containers"][0]["command"]
    init = subprocess.Popen(command, cwd=tmp_path)
    try:
        wait_until(lambda: (tmp_path / "ready").exists(), what="the job's Python to start")
        init.send_signal(15)  # what the kubelet sends PID 1 on a suspend
        # The job's status: its bash script's, killed by the TERM (128 + 15)...
        assert init.wait(10) == 143
        # ...but only after its Python has written the checkpoint.
        assert (tmp_path / "checkpoint").read_text() == "TERM"
    finally:
        if init.poll() is None:
            init.kill()
            init.wait(5)


def test_a_job_that_ends_on_its_own_is_not_held_by_a_leftover_background_process(
    make_backend: MakeBackend, tmp_path: Any
) -> None:
    import os
    import signal
    import subprocess

    (tmp_path / "run.sh").write_text("sleep 300 & echo $! > bg.pid; exit 4\n")
    spec = make_spec(kind=EntrypointKind.BASH, entrypoint="run.sh", parameters=())
    command = make_backend().manifests.build_pod(spec, spec.ranks[0], "uid-1")["spec"]["containers"][0]["command"]
    init = subprocess.Popen(command, cwd=tmp_path)
    try:
        assert init.wait(10) == 4  # the pod ends with the job, whatever it left behind
    finally:
        if init.poll() is None:
            init.kill()
            init.wait(5)
        if (tmp_path / "bg.pid").exists():
            os.kill(int((tmp_path / "bg.pid").read_text()), signal.SIGKILL)


def test_the_api_client_keeps_a_bounded_connection_pool(kube: KubeServer, settings: Any, tmp_path: Any) -> None:
    import yaml

    from apps.launcher.backends import _kube_api_client

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "k", "cluster": {"server": kube.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "k", "context": {"cluster": "k", "user": "u"}}],
                "current-context": "k",
            }
        )
    )
    settings.ROTA_KUBERNETES = {
        **settings.ROTA_KUBERNETES,
        "IN_CLUSTER": False,
        "KUBECONFIG": str(kubeconfig),
        "CONNECTION_POOL": 3,
    }
    _kube_api_client.cache_clear()
    try:
        api = _kube_api_client()
        assert api is _kube_api_client()  # one client (one pool) for the job and container backends
        assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == 3
        # Twenty calls from eight threads at once keep at most three connections open for reuse.
        core = client.CoreV1Api(api)
        threads = [
            threading.Thread(target=lambda: [core.list_namespaced_pod(NAMESPACE) for _ in range(20)]) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        pools = list(api.rest_client.pool_manager.pools._container.values())
        assert len(pools) == 1 and pools[0].pool.qsize() <= 3
        assert len(kube.requests(method="GET", resource="pods")) == 160
    finally:
        _kube_api_client.cache_clear()


def test_cpu_only_pod_hides_gpus_and_keeps_cuda_env(make_backend: MakeBackend) -> None:
    spec = make_spec(gpus_per_rank=0, cpu=2)
    pod = make_backend().manifests.build_pod(spec, spec.ranks[0], "uid-1")
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"  # the image's NVIDIA_VISIBLE_DEVICES=all must not leak GPUs
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert container["resources"] == {"requests": {"cpu": "2"}}
    assert "imagePullSecrets" not in pod["spec"]


def test_granted_capabilities_are_added_and_validated(make_backend: MakeBackend) -> None:
    backend = make_backend()
    spec = make_spec(capabilities=("cap_sys_ptrace", "NET_ADMIN", "SYS_PTRACE"))
    caps = backend.manifests.build_pod(spec, spec.ranks[0], "uid")["spec"]["containers"][0]["securityContext"][
        "capabilities"
    ]
    assert caps == {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_PTRACE"]}
    assert normalize_capabilities(["CAP_CHOWN"]) == ["CHOWN"]
    for refused in (("ALL",), ("SYS ADMIN",), ("",)):
        with pytest.raises(ValueError, match="capability"):
            backend.start(make_spec(capabilities=refused))


RDMA = "rdma/hca_shared_devices_a"


def test_pod_options_reach_the_created_pods_and_validate(kube: KubeServer, make_backend: MakeBackend) -> None:
    options = PodOptions(
        node_selector={"fabric": "ib"},
        tolerations=(
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "fabric", "value": "ib", "effect": "NoExecute", "tolerationSeconds": 300},
        ),
        runtime_class_name="nvidia",
        priority_class_name="training",
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "rota.dev/stop-reason": "stop"},
        resources={RDMA: 1},
        host_network=True,
    )
    make_backend().start(make_spec(cpu=30, memory_bytes=2**30, capabilities=("IPC_LOCK",), pod=options))
    for rank in (0, 1):
        pod = kube.get("v1/pods", NAMESPACE, f"rota-7-{rank}")
        assert pod is not None
        spec = pod["spec"]
        assert spec["nodeSelector"] == {"fabric": "ib"}
        assert spec["tolerations"] == [dict(t) for t in options.tolerations]
        assert (spec["runtimeClassName"], spec["priorityClassName"]) == ("nvidia", "training")
        assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
        # Rota's own annotation domain is never the admin's: the stop reason stays ours.
        assert pod["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
        job = spec["containers"][0]
        assert job["resources"] == {
            "requests": {RDMA: "1", "cpu": "30", "memory": str(2**30), "nvidia.com/gpu": "8"},
            "limits": {RDMA: "1", "memory": str(2**30), "nvidia.com/gpu": "8"},
        }
        assert job["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
        # Still pinned to the placed node: a selector narrows, never replaces, the pinning.
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [f"gpu-node-{rank + 1}"]
        kubernetes_validate.validate(without_server_fields(pod), "1.31", strict=True)


def test_pods_without_options_keep_the_defaults(kube: KubeServer, make_backend: MakeBackend) -> None:
    make_backend().start(make_spec(ranks=1))
    pod = kube.get("v1/pods", NAMESPACE, "rota-7-0")
    assert pod is not None
    assert pod["spec"]["hostNetwork"] is False
    for absent in ("nodeSelector", "tolerations", "runtimeClassName", "priorityClassName", "dnsPolicy"):
        assert absent not in pod["spec"]
    assert "annotations" not in pod["metadata"]


def test_invalid_extra_resources_are_refused_before_any_request(kube: KubeServer, make_backend: MakeBackend) -> None:
    backend = make_backend()
    for resources in ({"nvidia.com/gpu": 1}, {"rdma": 1}, {RDMA: 0}):
        with pytest.raises(ValueError, match="extra resource"):
            backend.start(make_spec(pod=PodOptions(resources=resources)))
    assert count(kube, method="POST") == 0


def test_invalid_specs_are_refused_before_any_request(kube: KubeServer, make_backend: MakeBackend) -> None:
    backend = make_backend()
    with pytest.raises(ValueError, match="non-root"):
        backend.start(make_spec(uid=0))
    with pytest.raises(ValueError, match="distinct"):
        backend.start(dataclasses.replace(make_spec(), ranks=(make_spec().ranks[0],) * 2))
    with pytest.raises(ValueError, match="two mounts"):
        backend.start(make_spec(mounts=(MountSpec("pvc", "a", "/dev/shm"),)))
    with pytest.raises(ValueError, match="mount kind"):
        backend.start(make_spec(mounts=(MountSpec("nfs", "server:/x", "/x"),)))
    assert count(kube, method="POST") == 0


def test_label_sanitising() -> None:
    assert sanitize_label_value("alice@lab.example") == "alice-lab.example"
    assert sanitize_label_value("-x" + "y" * 80) == "x" + "y" * 61
    assert sanitize_label_value("***") == ""
    assert sanitize_label_key("My.Team/exp name!") == "my.team/exp-name"
    assert sanitize_label_key("/only-name") == "only-name"
    assert sanitize_label_key("domain/***") is None


# --------------------------------------------------------------------------------------------------
# Idempotency


def test_start_is_idempotent_also_across_restarts_and_threads(kube: KubeServer, make_backend: MakeBackend) -> None:
    backend = make_backend()
    spec = make_spec()
    backend.start(spec)
    backend.start(spec)
    assert count(kube, method="POST", resource="pods") == 2  # the second call knew its pods

    # A restarted process knows nothing: creation conflicts (409) are "already there".
    make_backend().start(spec)
    assert count(kube, method="POST", resource="pods") == 4
    assert kube.names("v1/pods") == ["rota-7-0", "rota-7-1"]

    # Two reconcile passes at the same moment, on a new attempt.
    racers = [make_backend(), make_backend()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def race(backend: KubernetesBackend) -> None:
        barrier.wait()
        try:
            backend.start(make_spec(attempt_id=8, ranks=3))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(b,)) for b in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert kube.names("v1/pods") == ["rota-7-0", "rota-7-1", "rota-8-0", "rota-8-1", "rota-8-2"]
    assert kube.names("v1/services") == ["rota-7", "rota-8"]


def test_existing_service_is_adopted_as_owner(kube: KubeServer, make_backend: MakeBackend, core: Any) -> None:
    backend = make_backend()
    existing = core.create_namespaced_service(NAMESPACE, backend.manifests.build_service(make_spec()))
    backend.start(make_spec())
    pod = kube.get("v1/pods", NAMESPACE, "rota-7-0")
    assert pod is not None
    assert pod["metadata"]["ownerReferences"][0]["uid"] == existing.metadata.uid


def test_start_after_suspend_never_recreates_ranks(kube: KubeServer, make_backend: MakeBackend) -> None:
    backend = make_backend()
    backend.start(make_spec())
    backend.signal_suspend(7)
    assert kube.names("v1/pods") == []
    backend.start(make_spec())  # a stale reconcile pass
    assert kube.names("v1/pods") == []
    # A restarted process reads the reason from the Service.
    make_backend().start(make_spec())
    assert kube.names("v1/pods") == []
    assert count(kube, method="POST", resource="pods") == 2


# --------------------------------------------------------------------------------------------------
# Observation without the watch threads (direct lists)


def test_observe_maps_pod_phases(make_backend: MakeBackend, core: Any) -> None:
    backend = make_backend()
    backend.start(make_spec(ranks=7))
    assert {r: o.phase for r, o in backend.observe(7).items()} == dict.fromkeys(range(7), RankPhase.PENDING)

    set_pod_status(
        core,
        "rota-7-0",
        {
            "phase": "Pending",
            "containerStatuses": [container({"waiting": {"reason": "ImagePullBackOff", "message": "pull denied"}})],
        },
    )
    set_pod_status(
        core,
        "rota-7-1",
        {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes fit"}
            ],
        },
    )
    set_pod_status(core, "rota-7-2", running())
    set_pod_status(core, "rota-7-3", terminated("Succeeded", 0, "Completed"))
    set_pod_status(core, "rota-7-4", terminated("Failed", 137, "OOMKilled"))
    set_pod_status(core, "rota-7-5", terminated("Failed", 137, "Error"))
    set_pod_status(core, "rota-7-6", {"phase": "Failed", "reason": "Evicted", "message": "low on memory"})

    start, end = epoch("2030-01-01T10:00:00Z"), epoch("2030-01-01T11:00:00Z")
    assert backend.observe(7) == {
        0: RankObservation(0, RankPhase.PENDING, "gpu-node-1", message="ImagePullBackOff: pull denied", stuck=True),
        1: RankObservation(1, RankPhase.PENDING, "gpu-node-2", message="Unschedulable: 0/3 nodes fit"),
        2: RankObservation(2, RankPhase.RUNNING, "gpu-node-3", started_at=start),
        3: RankObservation(3, RankPhase.SUCCEEDED, "gpu-node-4", 0, start, end),
        4: RankObservation(4, RankPhase.FAILED, "gpu-node-5", 137, start, end, "OOMKilled"),
        5: RankObservation(5, RankPhase.FAILED, "gpu-node-6", 137, start, end, "Error (SIGKILL)"),
        # Evicted: the cluster ended it, not the job (requeued, never failed).
        6: RankObservation(
            6, RankPhase.KILLED, "gpu-node-7", message="ended by the cluster (Evicted: low on memory)", disrupted=True
        ),
    }
    assert backend.observe(99) == {}


def test_pod_that_vanishes_on_its_own_is_missing(make_backend: MakeBackend, core: Any) -> None:
    backend = make_backend()
    backend.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    assert backend.observe(7)[0].phase == RankPhase.RUNNING
    core.delete_namespaced_pod("rota-7-0", NAMESPACE)  # e.g. an admin's kubectl
    observation = backend.observe(7)[0]
    assert (observation.phase, observation.message, observation.node) == (
        RankPhase.MISSING,
        "pod deleted",
        "gpu-node-1",
    )


def test_foreign_pods_are_ignored_and_selectors_sent(kube: KubeServer, make_backend: MakeBackend, core: Any) -> None:
    core.create_namespaced_pod(NAMESPACE, {"metadata": {"name": "someone-else"}, "spec": {"containers": []}})
    core.create_namespaced_pod(
        NAMESPACE, {"metadata": {"name": "half", "labels": {"rota.dev/attempt": "x"}}, "spec": {"containers": []}}
    )
    backend = make_backend()
    backend.start(make_spec(ranks=1))
    assert set(backend.observe(7)) == {0}
    assert backend.known_attempts() == {7}
    selectors = [r.params.get("labelSelector") for r in kube.requests(action=kmock.action.LIST)]
    assert selectors == ["rota.dev/attempt=7", "rota.dev/attempt", "rota.dev/attempt"]


# --------------------------------------------------------------------------------------------------
# Suspend / stop


def test_suspend_annotates_then_deletes_with_the_grace(kube: KubeServer, make_backend: MakeBackend, core: Any) -> None:
    backend = make_backend()
    backend.start(make_spec())
    for rank in (0, 1):
        set_pod_status(core, f"rota-7-{rank}", running())
    assert {o.phase for o in backend.observe(7).values()} == {RankPhase.RUNNING}
    before = len(kube.requests())

    backend.signal_suspend(7)

    writes = [
        (r.method.value, r.resource.plural, r.name, dict(r.params), r.data)
        for r in kube.requests()[before:]
        if r.method.value in ("PATCH", "DELETE")
    ]
    marker = {"metadata": {"annotations": {"rota.dev/stop-reason": "suspend"}}}
    assert [w[:4] for w in writes] == [
        ("PATCH", "services", "rota-7", {}),
        ("PATCH", "pods", "rota-7-0", {}),
        ("DELETE", "pods", "rota-7-0", {"gracePeriodSeconds": "60"}),
        ("PATCH", "pods", "rota-7-1", {}),
        ("DELETE", "pods", "rota-7-1", {"gracePeriodSeconds": "60"}),
    ]
    # (>=: the emulator stamps a resourceVersion into the recorded patch body)
    assert all(kmock.ObjectVersion(w[4]) >= marker for w in writes if w[0] == "PATCH")
    assert kube.names("v1/pods") == []

    observed = backend.observe(7)
    assert {r: (o.phase, o.message) for r, o in observed.items()} == {
        0: (RankPhase.KILLED, "pod deleted by the platform (suspend)"),
        1: (RankPhase.KILLED, "pod deleted by the platform (suspend)"),
    }
    # Repeats are harmless: nothing left to delete.
    backend.signal_suspend(7)
    assert count(kube, method="DELETE") == 2


def test_suspend_grace_is_configurable_per_backend_and_per_call(kube: KubeServer, make_backend: MakeBackend) -> None:
    backend = make_backend(suspend_grace_seconds=120)
    backend.start(make_spec(attempt_id=7, ranks=1))
    backend.start(make_spec(attempt_id=8, ranks=1))
    pod = kube.get("v1/pods", NAMESPACE, "rota-7-0")
    assert pod is not None
    assert pod["spec"]["terminationGracePeriodSeconds"] == 120
    backend.signal_suspend(7)
    backend.signal_suspend(8, grace_seconds=5)
    assert [(r.name, r.params) for r in kube.requests(method="DELETE")] == [
        ("rota-7-0", {"gracePeriodSeconds": "120"}),
        ("rota-8-0", {"gracePeriodSeconds": "5"}),
    ]
    with pytest.raises(ValueError, match="grace"):
        backend.signal_suspend(8, grace_seconds=-1)


def test_stop_kills_at_once_and_leaves_finished_ranks(kube: KubeServer, make_backend: MakeBackend, core: Any) -> None:
    backend = make_backend()
    backend.start(make_spec(ranks=3))
    set_pod_status(core, "rota-7-0", running())
    set_pod_status(core, "rota-7-1", terminated("Succeeded", 0, "Completed"))
    set_pod_status(core, "rota-7-2", terminated("Failed", 1, "Error"))
    backend.observe(7)

    backend.stop(7)

    assert [(r.name, r.params) for r in kube.requests(method="DELETE")] == [("rota-7-0", {"gracePeriodSeconds": "0"})]
    annotated = [r.name for r in kube.requests(method="PATCH", subresource=None)]
    assert annotated == ["rota-7", "rota-7-0"]
    service = kube.get("v1/services", NAMESPACE, "rota-7")
    assert service is not None
    assert service["metadata"]["annotations"] == {"rota.dev/stop-reason": "stop"}
    observed = backend.observe(7)
    assert observed[0].phase == RankPhase.KILLED
    assert observed[0].message == "pod deleted by the platform (stop)"
    assert observed[1].phase == RankPhase.SUCCEEDED
    assert (observed[2].phase, observed[2].exit_code) == (RankPhase.FAILED, 1)


def test_stop_after_suspend_shortens_the_grace(kube: KubeServer, make_backend: MakeBackend, core: Any) -> None:
    # A real API server keeps a pod while it terminates; simulate one still in its grace period.
    backend = make_backend()
    backend.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    core.patch_namespaced_pod(
        "rota-7-0",
        NAMESPACE,
        {
            "metadata": {
                "annotations": {"rota.dev/stop-reason": "suspend"},
                "deletionTimestamp": "2030-01-01T10:00:00Z",
                "deletionGracePeriodSeconds": 60,
                "finalizers": ["test.example/hold"],  # keeps it in kmock while "terminating"
            }
        },
    )
    backend.signal_suspend(7)  # already terminating with this grace: nothing to do
    assert count(kube, method="DELETE") == 0
    backend.stop(7)
    assert [(r.name, r.params) for r in kube.requests(method="DELETE")] == [("rota-7-0", {"gracePeriodSeconds": "0"})]
    backend.signal_suspend(7)  # a stop is never downgraded
    service = kube.get("v1/services", NAMESPACE, "rota-7")
    assert service is not None
    assert service["metadata"]["annotations"] == {"rota.dev/stop-reason": "stop"}


def test_a_kill_that_ends_a_suspend_deletes_at_once_and_still_says_suspend(
    kube: KubeServer, make_backend: MakeBackend, core: Any
) -> None:
    backend = make_backend()
    backend.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    backend.stop(7, reason="suspend")  # the job said it was ready (go_suspend), or its grace ran out
    assert [(r.name, r.params) for r in kube.requests(method="DELETE")] == [("rota-7-0", {"gracePeriodSeconds": "0"})]
    service = kube.get("v1/services", NAMESPACE, "rota-7")
    assert service is not None
    assert service["metadata"]["annotations"] == {"rota.dev/stop-reason": "suspend"}
    backend.stop(7)  # a stop after it wins
    service = kube.get("v1/services", NAMESPACE, "rota-7")
    assert service is not None
    assert service["metadata"]["annotations"] == {"rota.dev/stop-reason": "stop"}


def test_killed_is_read_from_the_annotation_after_a_restart(make_backend: MakeBackend, core: Any) -> None:
    make_backend().start(make_spec(ranks=3))
    for rank in (0, 1):
        core.patch_namespaced_pod(
            f"rota-7-{rank}", NAMESPACE, {"metadata": {"annotations": {"rota.dev/stop-reason": "suspend"}}}
        )
    set_pod_status(core, "rota-7-0", terminated("Failed", 143, "Error"))  # SIGTERM, no handler
    set_pod_status(core, "rota-7-1", terminated("Succeeded", 0, "Completed"))  # checkpointed, exited 0
    set_pod_status(core, "rota-7-2", terminated("Failed", 143, "Error"))  # not signalled by us
    observed = make_backend().observe(7)  # a fresh process: no in-memory marker
    assert (observed[0].phase, observed[0].exit_code, observed[0].message) == (
        RankPhase.KILLED,
        143,
        "ended after suspend (exit 143)",
    )
    assert (observed[1].phase, observed[1].exit_code) == (RankPhase.KILLED, 0)
    assert (observed[2].phase, observed[2].message) == (RankPhase.FAILED, "Error (SIGTERM)")


# --------------------------------------------------------------------------------------------------
# Nodes


def make_node(core: Any, name: str, ready: str = "True", reason: str = "", unschedulable: bool = False) -> None:
    core.create_node(
        {
            "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": ready, "reason": reason},
                ]
            },
        }
    )


def test_nodes_from_a_direct_list(make_backend: MakeBackend, core: Any) -> None:
    make_node(core, "n1")
    make_node(core, "n2", ready="False", reason="KubeletNotReady")
    make_node(core, "n3", unschedulable=True)
    core.create_node({"metadata": {"name": "n4"}, "status": {}})
    backend = make_backend()
    assert backend.nodes() == [
        NodeObservation("n1", True, ""),
        NodeObservation("n2", False, "KubeletNotReady"),
        NodeObservation("n3", True, "cordoned", schedulable=False),  # takes no new work; its jobs go on
        NodeObservation("n4", False, "no Ready condition"),
    ]
    core.patch_node_status(
        "n1", {"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}}
    )
    assert backend.nodes()[0] == NodeObservation("n1", False, "NodeStatusUnknown")


# --------------------------------------------------------------------------------------------------
# List + watch


def watched(
    make_backend: MakeBackend, pod_watch: StreamScript, node_watch: StreamScript, **kwargs: Any
) -> KubernetesBackend:
    backend = make_backend(**kwargs)
    backend.start_watching()
    assert backend.wait_synced(5)
    wait_until(lambda: pod_watch.opened == 1 and node_watch.opened == 1, what="both watches open")
    return backend


def event(
    kube: KubeServer, kind: str, name: str, resource: str = "v1/pods", namespace: str | None = NAMESPACE
) -> dict[str, Any]:
    return {"type": kind, "object": kube.last(resource, namespace, name)}


def phase_of(backend: KubernetesBackend, attempt: int, rank: int) -> RankPhase | None:
    observation = backend.observe(attempt).get(rank)
    return observation.phase if observation else None


def test_watch_starts_from_the_list_version_and_applies_events(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    pre = make_backend()
    pre.start(make_spec(ranks=2))  # pods exist before the informer lists them
    set_pod_status(core, "rota-7-0", running())
    backend = watched(make_backend, pod_watch, node_watch)

    pod_list = kube.requests(action=kmock.action.LIST, resource="pods")[-1]
    assert pod_list.params == {"labelSelector": "rota.dev/attempt"}
    watch = pod_watch.requests[0]
    list_version = watch.params["resourceVersion"]
    assert watch.params["labelSelector"] == "rota.dev/attempt"
    assert watch.params["allowWatchBookmarks"] == "true"
    assert list_version.isdigit()
    assert phase_of(backend, 7, 0) == RankPhase.RUNNING  # from the list, no request per observe
    lists = count(kube, action=kmock.action.LIST)
    assert backend.observe(7)[1].phase == RankPhase.PENDING
    assert count(kube, action=kmock.action.LIST) == lists

    set_pod_status(core, "rota-7-1", terminated("Failed", 2, "Error"))
    pod_watch.push(event(kube, "MODIFIED", "rota-7-1"))
    wait_until(lambda: phase_of(backend, 7, 1) == RankPhase.FAILED, what="MODIFIED applied")

    # A DELETED event of a pod the platform signalled reads as KILLED.
    core.patch_namespaced_pod("rota-7-0", NAMESPACE, {"metadata": {"annotations": {"rota.dev/stop-reason": "stop"}}})
    core.delete_namespaced_pod("rota-7-0", NAMESPACE, grace_period_seconds=0)
    pod_watch.push(event(kube, "DELETED", "rota-7-0"))
    wait_until(lambda: phase_of(backend, 7, 0) == RankPhase.KILLED, what="DELETED applied")
    assert count(kube, action=kmock.action.LIST) == lists  # events only, no relist


def test_watch_resumes_from_the_last_seen_version_when_it_ends(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    backend = watched(make_backend, pod_watch, node_watch)
    backend.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    modified = event(kube, "MODIFIED", "rota-7-0")
    pod_watch.push(modified, {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "9001"}}})
    wait_until(lambda: phase_of(backend, 7, 0) == RankPhase.RUNNING, what="event applied")
    pod_lists = count(kube, action=kmock.action.LIST, resource="pods")

    pod_watch.end()
    wait_until(lambda: pod_watch.opened == 2, what="the watch to be reopened")
    assert pod_watch.requests[1].params["resourceVersion"] == "9001"  # the bookmark's version
    assert count(kube, action=kmock.action.LIST, resource="pods") == pod_lists  # resumed, not relisted

    set_pod_status(core, "rota-7-0", terminated("Succeeded", 0, "Completed"))
    pod_watch.push(event(kube, "MODIFIED", "rota-7-0"))
    wait_until(lambda: phase_of(backend, 7, 0) == RankPhase.SUCCEEDED, what="event on the resumed watch")


def test_410_gone_event_triggers_a_relist(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    backend = watched(make_backend, pod_watch, node_watch)
    backend.start(make_spec(ranks=1))
    pod_lists = count(kube, action=kmock.action.LIST, resource="pods")
    set_pod_status(core, "rota-7-0", running())  # no event for this one: only a relist can tell

    gone = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 410,
        "reason": "Expired",
        "message": "too old",
    }
    pod_watch.push({"type": "ERROR", "object": gone})
    wait_until(lambda: pod_watch.opened == 2, what="watch after relist")
    assert count(kube, action=kmock.action.LIST, resource="pods") == pod_lists + 1
    assert phase_of(backend, 7, 0) == RankPhase.RUNNING
    relisted_version = pod_watch.requests[1].params["resourceVersion"]
    assert relisted_version != pod_watch.requests[0].params["resourceVersion"]


def test_410_response_on_watch_triggers_a_relist(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    backend = watched(make_backend, pod_watch, node_watch)
    backend.start(make_spec(ranks=1))
    pod_watch.push(event(kube, "ADDED", "rota-7-0"))
    wait_until(lambda: phase_of(backend, 7, 0) == RankPhase.PENDING, what="ADDED applied")
    pod_lists = count(kube, action=kmock.action.LIST, resource="pods")

    pod_watch.fail_next(kmock.KubernetesError(status=410, reason="Expired", message="too old resource version"))
    core.delete_namespaced_pod("rota-7-0", NAMESPACE)  # while nobody watches
    pod_watch.end()  # the resumed watch gets 410 → relist → the pod is gone
    wait_until(lambda: pod_watch.opened == 3, what="watch after the relist")
    resumed_at = pod_watch.requests[1].params["resourceVersion"]
    assert resumed_at == event(kube, "ADDED", "rota-7-0")["object"]["metadata"]["resourceVersion"]
    assert count(kube, action=kmock.action.LIST, resource="pods") == pod_lists + 1
    assert backend.observe(7)[0].phase == RankPhase.MISSING


def test_periodic_relist_repairs_missed_events(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    backend = watched(make_backend, pod_watch, node_watch, relist_interval=0.3)
    backend.start(make_spec(ranks=2))
    lists = count(kube, action=kmock.action.LIST, resource="pods")
    # Two changes whose events never arrive.
    set_pod_status(core, "rota-7-0", running())
    core.delete_namespaced_pod("rota-7-1", NAMESPACE)
    wait_until(
        lambda: phase_of(backend, 7, 0) == RankPhase.RUNNING and phase_of(backend, 7, 1) == RankPhase.MISSING,
        what="a relist to repair the cache",
    )
    assert count(kube, action=kmock.action.LIST, resource="pods") > lists


def test_node_readiness_from_the_node_watch(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    make_node(core, "n1")
    backend = watched(make_backend, pod_watch, node_watch)
    assert backend.nodes() == [NodeObservation("n1", True, "")]
    node_lists = count(kube, action=kmock.action.LIST, resource="nodes")

    core.patch_node_status(
        "n1", {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}}
    )
    node_watch.push(event(kube, "MODIFIED", "n1", "v1/nodes", None))
    wait_until(lambda: backend.nodes() == [NodeObservation("n1", False, "KubeletNotReady")], what="NotReady")

    make_node(core, "n2", unschedulable=True)
    node_watch.push(event(kube, "ADDED", "n2", "v1/nodes", None))
    wait_until(lambda: len(backend.nodes()) == 2, what="ADDED node")
    assert backend.nodes()[1] == NodeObservation("n2", True, "cordoned", schedulable=False)

    core.delete_node("n1")
    node_watch.push(event(kube, "DELETED", "n1", "v1/nodes", None))
    wait_until(lambda: [n.name for n in backend.nodes()] == ["n2"], what="DELETED node")
    assert count(kube, action=kmock.action.LIST, resource="nodes") == node_lists  # served from the cache


def test_close_stops_every_thread_promptly(
    make_backend: MakeBackend, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    backend = watched(make_backend, pod_watch, node_watch)
    backend.start_watching()  # idempotent
    assert pod_watch.opened == 1
    began = time.monotonic()
    backend.close()
    assert time.monotonic() - began < 2
    assert [t.name for t in threading.enumerate() if t.name.startswith("rota-k8s-")] == []
    with pytest.raises(RuntimeError, match="closed"):
        backend.start_watching()


# --------------------------------------------------------------------------------------------------
# Logs


def stamp(base: dt.datetime, millis: int) -> str:
    """The kubelet's RFC3339Nano: nine digits, trailing zeros dropped."""
    moment = base + dt.timedelta(milliseconds=millis)
    fraction = f"{moment.microsecond * 1000:09d}".rstrip("0")
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if fraction else "") + "Z"


def test_logs_are_followed_resumed_without_duplicates_and_finished(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_logs: StreamScript
) -> None:
    received: list[tuple[int, int, list[str]]] = []
    backend = make_backend(log_sink=lambda attempt, rank, lines: received.append((attempt, rank, list(lines))))

    def delivered() -> list[str]:
        return [line for _, _, lines in received for line in lines]

    backend.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    assert backend.last_output_at(7) is None
    backend.observe(7)  # sees it Running: a follower starts
    wait_until(lambda: pod_logs.opened == 1, what="the log request")
    first = pod_logs.requests[0]
    assert (first.name, first.params) == ("rota-7-0", {"container": "job", "follow": "true", "timestamps": "true"})

    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t1, t2, t3, t4, t5 = (stamp(base, ms) for ms in (0, 10, 20, 30, 40))
    pod_logs.push(f"{t1} hello\n{t2} wor".encode(), f"ld\n{t2} same stamp\n{t3} partial".encode())
    wait_until(lambda: delivered() == ["hello", "world", "same stamp"], what="first lines")
    assert backend.last_output_at(7) is not None

    pod_logs.end()  # the connection drops while the pod still runs
    wait_until(lambda: pod_logs.opened == 2, what="the reconnect")
    since = int(pod_logs.requests[1].params["sinceSeconds"])
    assert 30 <= since <= 90  # age of the last delivered line + the clock-skew margin
    # The kubelet repeats what is newer than sinceSeconds: the cursor skips what was delivered.
    pod_logs.push(f"{t1} hello\n{t2} world\n{t2} same stamp\n{t3} partial, now complete\n{t4} \n".encode())
    wait_until(lambda: len(delivered()) == 5, what="resumed lines")

    set_pod_status(core, "rota-7-0", terminated("Succeeded", 0, "Completed"))
    pod_logs.push(f"{t5} bye, no newline".encode())
    pod_logs.end()
    wait_until(lambda: not backend.active_log_streams(), what="the follower to finish")
    assert delivered() == ["hello", "world", "same stamp", "partial, now complete", "", "bye, no newline"]
    assert {(attempt, rank) for attempt, rank, _ in received} == {(7, 0)}
    assert pod_logs.opened == 2


def test_release_and_close_stop_log_followers(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_logs: StreamScript
) -> None:
    backend = make_backend(log_sink=lambda attempt, rank, lines: None)
    backend.start(make_spec(attempt_id=7, ranks=1))
    backend.start(make_spec(attempt_id=8, ranks=1))
    set_pod_status(core, "rota-7-0", running())
    set_pod_status(core, "rota-8-0", running())
    backend.observe(7)
    backend.observe(8)
    wait_until(lambda: pod_logs.opened == 2, what="two log streams")
    assert backend.active_log_streams() == {(7, 0), (8, 0)}
    backend.release(7)
    wait_until(lambda: backend.active_log_streams() == {(8, 0)}, what="release to stop its follower")
    backend.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("rota-k8s-")] == []


def test_log_timestamps_compare_as_numbers() -> None:
    midnight = int(epoch("2030-01-01T00:00:00+00:00"))
    assert parse_log_timestamp("2030-01-01T00:00:00.5Z") == (midnight, 500_000_000)
    assert parse_log_timestamp("2030-01-01T02:00:00.000000001+02:00") == (midnight, 1)
    # As strings "…00Z" > "…00.000000001Z"; as instants it is the other way round.
    earlier, later = parse_log_timestamp("2030-01-01T00:00:00Z"), parse_log_timestamp("2030-01-01T00:00:00.000000001Z")
    assert earlier is not None
    assert later is not None
    assert earlier < later
    assert parse_log_timestamp("hello") is None


def test_line_splitter_on_a_fake_stream() -> None:
    splitter = LogLineSplitter()
    out: list[str] = []
    for chunk in (b"a\r\nb", b"", b"c\nd\xc3", b"\xa9\n\xff\n", b"tail"):
        out += splitter.feed(chunk)
    assert out == ["a", "bc", "d\u00e9", "\ufffd"]
    assert splitter.flush() == ["tail"]
    assert splitter.flush() == []


def test_log_cursor_skips_exactly_what_was_delivered() -> None:
    cursor = LogCursor()
    a, b, c, d = (100, 1), (100, 2), (101, 0), (102, 0)
    cursor.begin_stream()
    assert [cursor.accept(k) for k in (a, b, b, None)] == [True, True, True, True]
    assert cursor.since_seconds(now=150.2) == 51 + 30
    cursor.begin_stream()  # reconnect: the server repeats from an earlier point
    assert [cursor.accept(k) for k in (a, b, b, b, c)] == [False, False, False, True, True]
    cursor.begin_stream()
    assert [cursor.accept(k) for k in (c, d, a)] == [False, True, True]  # after catching up, nothing is dropped
    assert LogCursor().since_seconds(now=1.0) is None


# --------------------------------------------------------------------------------------------------
# Known attempts and release


def test_known_attempts_and_release(kube: KubeServer, make_backend: MakeBackend, core: Any) -> None:
    backend = make_backend()
    backend.start(make_spec(attempt_id=7, ranks=2))
    backend.start(make_spec(attempt_id=8, ranks=1))
    set_pod_status(core, "rota-7-0", terminated("Succeeded", 0, "Completed"))
    core.create_namespaced_service(
        NAMESPACE, backend.manifests.build_service(make_spec(attempt_id=9))
    )  # a service only
    assert backend.known_attempts() == {7, 8, 9}

    backend.release(7)

    deletes = [(r.resource.plural, r.name, r.params) for r in kube.requests(method="DELETE")]
    assert deletes == [
        ("services", "rota-7", {"propagationPolicy": "Background"}),
        ("secrets", "rota-7-env", {}),
        ("pods", "rota-7-0", {"gracePeriodSeconds": "0"}),  # kmock has no garbage collector: we clean up too
        ("pods", "rota-7-1", {"gracePeriodSeconds": "0"}),
    ]
    assert backend.known_attempts() == {8, 9}
    assert backend.observe(7) == {}
    assert backend.last_output_at(7) is None
    backend.start(make_spec(attempt_id=7))  # a stale pass cannot bring it back
    backend.release(7)  # and releasing twice is harmless
    assert kube.names("v1/pods") == ["rota-8-0"]
    assert kube.names("v1/services") == ["rota-8", "rota-9"]


# --------------------------------------------------------------------------------------------------
# API load (defect 6)

# The issue's scale: 1,000 pods (and their Services). kmock serves each *create* in time growing with
# its object count (1,000 creates took 8 minutes here), so the objects are put straight into the
# emulator; what is measured — the API calls of a pass — goes through HTTP as in production.
PODS = 1000


def test_a_reconcile_pass_makes_no_list_calls_between_relists(
    kube: KubeServer, make_backend: MakeBackend, core: Any, pod_watch: StreamScript, node_watch: StreamScript
) -> None:
    make_node(core, "n1")

    def seed() -> None:
        for attempt_id in range(1, PODS + 1):
            labels = {"rota.dev/attempt": str(attempt_id), "rota.dev/rank": "0"}
            meta = {"namespace": NAMESPACE, "labels": labels, "uid": f"uid-{attempt_id}", "resourceVersion": "1"}
            kube.emulator.objects["v1/pods", NAMESPACE, f"rota-{attempt_id}-0"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**meta, "name": f"rota-{attempt_id}-0"},
                "spec": {"containers": []},
                "status": {"phase": "Pending"},
            }
            kube.emulator.objects["v1/services", NAMESPACE, f"rota-{attempt_id}"] = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {**meta, "name": f"rota-{attempt_id}", "labels": {"rota.dev/attempt": str(attempt_id)}},
                "spec": {"clusterIP": "None"},
            }

    kube.call(seed)
    assert len(kube.names("v1/pods")) == PODS
    backend = watched(make_backend, pod_watch, node_watch, relist_interval=3600.0)

    def one_pass() -> int:
        """What the reconcile asks of the backend each pass, and how many API calls that costs."""
        before = len(kube.requests())
        backend.nodes()
        for attempt_id in range(1, PODS + 1):
            assert backend.observe(attempt_id)[0].phase == RankPhase.PENDING
        assert len(backend.known_attempts()) == PODS
        return len(kube.requests()) - before

    assert one_pass() == 1  # the first pass lists the Services once (pods come from the informer)
    assert [one_pass() for _ in range(3)] == [0, 0, 0]  # then nothing until the next relist
