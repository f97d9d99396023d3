"""Development containers on Kubernetes: ``KubernetesContainerBackend`` against kmock's emulator
through the real ``kubernetes`` client over HTTP, the objects against the API schema
(``kubernetes-validate``), the restart wrapper as a real bash process, and the launcher's container
pass with the database (start, running, open through the proxy, stop, a pod lost, a restart of
the portal, idle reclaim).

kmock's watch replays current objects only, so the informer is driven by relists
(``relist_interval``) or by a scripted watch; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import kubernetes_validate
import pytest
from kubernetes import client

from apps.launcher.backends.base import MountSpec, PodOptions, RankPhase
from apps.launcher.backends.container_base import ContainerSpec, ServiceSpec, run_key
from apps.launcher.backends.container_kubernetes import KubernetesContainerBackend, service_observations
from apps.launcher.backends.kubernetes import Manifests
from apps.launcher.backends.kubernetes.container_ingress import IngressConfig, build_ingress
from apps.launcher.backends.kubernetes.container_manifests import SERVICE_WRAPPER, ContainerManifests

from .conftest import NAMESPACE, KubeServer, StreamScript, wait_until
from .test_kubernetes_backend import without_server_fields

K8S_VERSION = "1.31"
MakeBackend = Callable[..., KubernetesContainerBackend]
KEY = run_key(5, 2)
POD = f"rota-c-{KEY}"


def make_spec(**overrides: Any) -> ContainerSpec:
    values: dict[str, Any] = {
        "container_id": 5,
        "run": 2,
        "owner": "alice",
        "name": "lab",
        "node": "gpu-node-1",
        "base_url": "/containers/alice/lab/",
        "token": "run-token-5-2",
        "workspace": "/home/alice",
        "image": "registry.example/lab:1",
        "cpu": 4,
        "memory_bytes": 16 * 2**30,
        "gpus": 2,
        "services": (
            ServiceSpec(0, "jupyter", "http", 8888, ""),
            ServiceSpec(1, "startup", "", 0, ""),
            ServiceSpec(2, "ssh", "tcp", 22, ""),
            ServiceSpec(3, "web", "http", 8080, "python -m http.server 8080"),
            ServiceSpec(4, "db", "tcp", 5432, "postgres -D data"),
        ),
        "startup_script": "pip install --user rich",
        "mounts": (MountSpec("pvc", "alice-home", "/home/alice"),),
        "uid": 4321,
        "gid": 4000,
        "uid_mapped": True,
        "node_ports": {"ssh": 30001, "db": 30002},
    }
    values.update(overrides)
    return ContainerSpec(**values)


@pytest.fixture
def make_container_backend(api_client: client.ApiClient) -> Any:
    backends: list[KubernetesContainerBackend] = []

    def factory(**kwargs: Any) -> KubernetesContainerBackend:
        backend = KubernetesContainerBackend(api_client, namespace=NAMESPACE, **kwargs)
        backends.append(backend)
        return backend

    yield factory
    for backend in backends:
        backend.close()


def container_state(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "image": "registry.example/lab:1",
        "imageID": "registry.example/lab@sha256:0",
        "ready": "running" in state,
        "restartCount": 0,
        "state": state,
        **({"containerID": f"containerd://{name}"} if "waiting" not in state else {}),
    }


def pod_running(core: client.CoreV1Api, *, ip: str = "10.1.2.3", ended: dict[str, int] | None = None) -> None:
    started = "2030-01-01T10:00:00Z"
    states = []
    for name in ("jupyter", "startup", "ssh", "web", "db"):
        if ended and name in ended:
            state = {"terminated": {"exitCode": ended[name], "reason": "Completed" if not ended[name] else "Error"}}
        else:
            state = {"running": {"startedAt": started}}
        states.append(container_state(name, state))
    status = {"phase": "Running", "podIP": ip, "startTime": started, "containerStatuses": states}
    core.patch_namespaced_pod_status(POD, NAMESPACE, {"status": status})


# -- objects -------------------------------------------------------------------------------------


def test_the_pod_runs_every_service_as_the_owner_with_the_job_pods_security_context() -> None:
    manifests = ContainerManifests(namespace=NAMESPACE)
    spec = make_spec()
    pod = manifests.build_pod(spec, owner_uid="uid-1")
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert list(containers) == ["jupyter", "startup", "ssh", "web", "db"]
    job_context = Manifests(namespace=NAMESPACE).build_pod(
        _job_spec(uid=4321, gid=4000), _job_spec(uid=4321, gid=4000).ranks[0], "u"
    )["spec"]["containers"][0]["securityContext"]
    for container in containers.values():
        assert container["securityContext"] == job_context
        assert container["image"] == "registry.example/lab:1"
        assert container["command"][:3] == ["bash", "-c", SERVICE_WRAPPER]
    assert pod["spec"]["securityContext"]["runAsUser"] == 4321
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["gpu-node-1"]
    # Whole GPUs, CPU and memory on JupyterLab's container (kernels and terminals); none elsewhere.
    assert containers["jupyter"]["resources"] == {
        "requests": {"cpu": "4", "memory": str(16 * 2**30), "nvidia.com/gpu": "2"},
        "limits": {"cpu": "4", "memory": str(16 * 2**30), "nvidia.com/gpu": "2"},
    }
    assert all(containers[n]["resources"] == {} for n in ("startup", "ssh", "web", "db"))
    env = {e["name"]: e for e in containers["jupyter"]["env"]}
    assert env["JUPYTER_TOKEN"] == {
        "name": "JUPYTER_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": f"rota-c-{KEY}-env", "key": "JUPYTER_TOKEN"}},
    }
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    assert "run-token-5-2" not in str(pod)  # the token is only in the Secret
    assert {e["name"]: e.get("value") for e in containers["web"]["env"]}["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "--ServerApp.base_url=/containers/alice/lab/" in containers["jupyter"]["command"]
    assert pod["metadata"]["labels"] == {
        "rota.dev/container": "5",
        "rota.dev/container-run": str(KEY),
        "rota.dev/container-name": "lab",
        "rota.dev/user": "alice",
    }
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert pod["metadata"]["annotations"]["rota.dev/services"] == (
        "jupyter:http:8888,startup::0,ssh:tcp:22,web:http:8080,db:tcp:5432"
    )


def _job_spec(uid: int, gid: int | None) -> Any:
    from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankSpec

    return LaunchSpec(
        attempt_id=1,
        chain_id="c",
        user="alice",
        uid=uid,
        gid=gid,
        workspace="/w",
        kind=EntrypointKind.PYTHON,
        entrypoint="t.py",
        parameters=(),
        interpreter="python3",
        image="i",
        ranks=(RankSpec(rank=0, node="n", env={}),),
    )


@pytest.mark.parametrize(
    ("uid", "gid", "expected"),
    [
        (4321, 4000, {"runAsNonRoot": True, "runAsUser": 4321, "runAsGroup": 4000}),
        (10007, None, {"runAsNonRoot": True, "runAsUser": 10007}),  # no mapped account: the image's group
    ],
)
def test_the_container_pods_identity_is_the_job_pods_and_neither_re_owns_volumes(
    uid: int, gid: int | None, expected: dict[str, Any]
) -> None:
    """Same identity on pod and containers as a training job's pod, and no ``fsGroup`` on either
    (docs/kubernetes.md, "Identity and signals": it would re-own shared volumes at each start)."""
    pod = ContainerManifests(namespace=NAMESPACE).build_pod(make_spec(uid=uid, gid=gid), "uid-1")
    job = _job_spec(uid=uid, gid=gid)
    job_pod = Manifests(namespace=NAMESPACE).build_pod(job, job.ranks[0], "u")
    assert pod["spec"]["securityContext"] == job_pod["spec"]["securityContext"]
    assert pod["spec"]["securityContext"] == {**expected, "seccompProfile": {"type": "RuntimeDefault"}}
    job_container = job_pod["spec"]["containers"][0]["securityContext"]
    assert [c["securityContext"] for c in pod["spec"]["containers"]] == [job_container] * 5
    assert {k: job_container[k] for k in expected} == expected
    for spec in (pod["spec"], job_pod["spec"]):
        assert not {"fsGroup", "fsGroupChangePolicy", "supplementalGroups"} & set(spec["securityContext"])
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_every_object_of_a_run_is_valid_against_the_kubernetes_schema() -> None:
    manifests = ContainerManifests(namespace=NAMESPACE, image_pull_secrets=["regcred"])
    spec = make_spec()
    objects = [
        manifests.build_service(spec),
        manifests.build_tcp_service(spec, "uid-1"),
        manifests.build_secret(spec, "uid-1"),
        manifests.build_pod(spec, "uid-1"),
    ]
    for obj in objects:
        assert obj is not None
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    tcp = objects[1]
    assert tcp is not None
    assert tcp["spec"]["type"] == "NodePort"
    assert [(p["name"], p["port"], p["nodePort"]) for p in tcp["spec"]["ports"]] == [
        ("tcp-22", 22, 30001),
        ("tcp-5432", 5432, 30002),
    ]
    assert [(p["name"], p["port"]) for p in objects[0]["spec"]["ports"]] == [("http-8888", 8888), ("http-8080", 8080)]


def test_long_service_names_still_give_valid_port_names() -> None:
    long_name = "tensorboard-of-the-big-experimnt"  # 32 characters: the longest a service may have
    spec = make_spec(
        services=(ServiceSpec(0, "jupyter", "http", 8888, ""), ServiceSpec(1, long_name, "http", 6006, "tb")),
        node_ports={},
    )
    manifests = ContainerManifests(namespace=NAMESPACE)
    for obj in (manifests.build_service(spec), manifests.build_pod(spec, "uid-1")):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


POD_OPTIONS = PodOptions(
    node_selector={"fabric": "ib"},
    tolerations=({"key": "fabric", "operator": "Exists", "effect": "NoSchedule"},),
    runtime_class_name="nvidia",
    priority_class_name="interactive",
    annotations={"prometheus.io/scrape": "true", "rota.dev/services": "forged"},
    resources={"rdma/hca_shared_devices_a": 1},
    host_network=True,
)


def test_the_container_pod_is_the_job_pod_spec_with_the_admins_pod_settings() -> None:
    spec = make_spec(pod=POD_OPTIONS, capabilities=("IPC_LOCK",))
    pod = ContainerManifests(namespace=NAMESPACE, image_pull_secrets=["regcred"]).build_pod(spec, "uid-1")
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    job = _job_spec(uid=4321, gid=4000)
    job = dataclasses.replace(job, pod=POD_OPTIONS, capabilities=("IPC_LOCK",))
    job_pod = Manifests(namespace=NAMESPACE, image_pull_secrets=["regcred"]).build_pod(job, job.ranks[0], "u")
    # Everything outside the containers and volumes is the job pod's, but for the names.
    shared = ("hostname", "subdomain", "containers", "volumes", "affinity", "terminationGracePeriodSeconds")
    assert {k: v for k, v in pod["spec"].items() if k not in shared} == {
        k: v for k, v in job_pod["spec"].items() if k not in shared
    }
    assert {k: v for k, v in pod["spec"].items() if k not in shared} == {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 4321,
            "runAsGroup": 4000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"fabric": "ib"},
        "tolerations": [{"key": "fabric", "operator": "Exists", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
        "priorityClassName": "interactive",
    }
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    for container in containers.values():
        assert container["securityContext"] == job_pod["spec"]["containers"][0]["securityContext"]
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    # The RDMA device goes with the GPUs, CPU and memory, on JupyterLab's container only.
    assert containers["jupyter"]["resources"] == {
        "requests": {"cpu": "4", "memory": str(16 * 2**30), "nvidia.com/gpu": "2", "rdma/hca_shared_devices_a": "1"},
        "limits": {"cpu": "4", "memory": str(16 * 2**30), "nvidia.com/gpu": "2", "rdma/hca_shared_devices_a": "1"},
    }
    assert all(containers[n]["resources"] == {} for n in ("startup", "ssh", "web", "db"))
    # The admins' annotations, never over Rota's own (how a restarted backend reads the pod).
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "rota.dev/services": "jupyter:http:8888,startup::0,ssh:tcp:22,web:http:8080,db:tcp:5432",
    }
    env = {e["name"]: e.get("value") for e in containers["jupyter"]["env"]}
    assert (env["USER"], env["LOGNAME"], env["HOME"]) == ("alice", "alice", "/home/alice")


def test_without_pod_settings_the_container_pod_has_none_of_them() -> None:
    pod = ContainerManifests(namespace=NAMESPACE).build_pod(make_spec(), "uid-1")
    assert pod["spec"]["hostNetwork"] is False
    for absent in ("nodeSelector", "tolerations", "runtimeClassName", "priorityClassName", "dnsPolicy", "subdomain"):
        assert absent not in pod["spec"]
    assert "fsGroup" not in pod["spec"]["securityContext"]  # no re-owning of shared volumes at each start
    assert list(pod["metadata"]["annotations"]) == ["rota.dev/services"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"uid": 0}, "non-root"),
        ({"image": ""}, "no image"),
        ({"node": ""}, "no node"),
        ({"services": (ServiceSpec(0, "web", "http", 80, "x"),)}, "JupyterLab"),
        ({"mounts": (MountSpec("pvc", "a", "/etc/rota/restart"),)}, "two mounts"),
        ({"pod": PodOptions(resources={"nvidia.com/gpu": 1})}, "extra resource"),
        ({"capabilities": ("ALL",)}, "refused Linux capability"),
    ],
)
def test_a_run_that_cannot_be_built_is_refused_with_the_reason(overrides: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ContainerManifests(namespace=NAMESPACE).build_pod(make_spec(**overrides), "uid-1")


def test_without_an_image_the_configured_default_image_is_used() -> None:
    pod = ContainerManifests(namespace=NAMESPACE, default_image="quay.io/jupyter/minimal-notebook:x").build_pod(
        make_spec(image=""), "u"
    )
    assert {c["image"] for c in pod["spec"]["containers"]} == {"quay.io/jupyter/minimal-notebook:x"}


INGRESS = IngressConfig(
    host="containers.rota.example",
    class_name="nginx",
    auth_url="http://rota-web.rota.svc/containers/auth/",
    signin_url="https://rota.example/containers/ticket/",
)
INGRESSES = "networking.k8s.io/v1/ingresses"


def test_the_ingress_routes_each_http_service_on_the_containers_host_with_auth_delegated_to_rota() -> None:
    spec = make_spec()
    labels = ContainerManifests(namespace=NAMESPACE).labels(spec)
    ingress = build_ingress(spec, config=INGRESS, namespace=NAMESPACE, labels=labels, owner_uid="uid-1")
    assert ingress is not None
    kubernetes_validate.validate(ingress, K8S_VERSION, strict=True)
    meta = ingress["metadata"]
    assert (meta["name"], meta["labels"], meta["ownerReferences"]) == (
        POD,
        labels,
        [{"apiVersion": "v1", "kind": "Service", "name": POD, "uid": "uid-1"}],
    )
    assert meta["annotations"] == {
        "nginx.ingress.kubernetes.io/auth-url": "http://rota-web.rota.svc/containers/auth/",
        "nginx.ingress.kubernetes.io/auth-signin": "https://rota.example/containers/ticket/",
        "nginx.ingress.kubernetes.io/auth-response-headers": "Authorization",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-body-size": "0",
    }
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "containers.rota.example"
    assert [
        (p["path"], p["pathType"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for p in rule["http"]["paths"]
    ] == [
        ("/containers/alice/lab/", "Prefix", POD, 8888),
        ("/containers/alice/lab/web/", "Prefix", POD, 8080),
    ]  # TCP services (ssh, db) are on NodePorts, never on the Ingress
    no_http = make_spec(services=(ServiceSpec(0, "ssh", "tcp", 22, ""),))
    assert build_ingress(no_http, config=INGRESS, namespace=NAMESPACE, labels=labels, owner_uid="u") is None


def test_the_ingress_is_created_with_the_run_and_deleted_at_its_stop_and_release(
    kube: KubeServer, make_container_backend: MakeBackend
) -> None:
    backend = make_container_backend(ingress=INGRESS)
    spec = make_spec()
    backend.start(spec)
    backend.start(spec)  # a repeat creates nothing twice (409 read as "already there")
    assert kube.names(INGRESSES) == [POD]
    ingress = kube.get(INGRESSES, NAMESPACE, POD)
    service = kube.get("v1/services", NAMESPACE, POD)
    assert ingress is not None and service is not None
    assert ingress["metadata"]["ownerReferences"][0]["uid"] == service["metadata"]["uid"]
    assert ingress["spec"]["rules"][0]["host"] == "containers.rota.example"
    backend.stop(5, 2)
    assert kube.names(INGRESSES) == []  # no more routing to a stopping run
    backend.stop(5, 2)  # repeats are harmless (404 read as gone)
    backend.release(5, 2)
    assert kube.names(INGRESSES) == [] and kube.names("v1/services") == []
    assert len(kube.requests(method="POST", resource="ingresses")) == 2


def test_without_a_containers_host_no_ingress_is_made(kube: KubeServer, make_container_backend: MakeBackend) -> None:
    backend = make_container_backend()
    backend.start(make_spec())
    backend.stop(5, 2)
    backend.release(5, 2)
    assert kube.requests(resource="ingresses") == []


# -- the backend against kmock --------------------------------------------------------------------


def test_start_creates_the_run_once_even_when_asked_again_or_by_a_restarted_process(
    kube: KubeServer, make_container_backend: MakeBackend
) -> None:
    backend = make_container_backend()
    spec = make_spec()
    backend.start(spec)
    backend.start(spec)
    assert kube.names("v1/pods") == [POD]
    assert kube.names("v1/services") == [f"rota-c-{KEY}", f"rota-c-{KEY}-tcp"]
    assert kube.names("v1/secrets") == [f"rota-c-{KEY}-env"]
    service_uid = kube.get("v1/services", NAMESPACE, f"rota-c-{KEY}")["metadata"]["uid"]  # type: ignore[index]
    for resource, name in (("v1/pods", POD), ("v1/secrets", f"rota-c-{KEY}-env"), ("v1/services", f"rota-c-{KEY}-tcp")):
        assert kube.get(resource, NAMESPACE, name)["metadata"]["ownerReferences"][0]["uid"] == service_uid  # type: ignore[index]
    assert len(kube.requests(method="POST", resource="pods")) == 1

    restarted = make_container_backend()  # a new portal process: it knows nothing yet
    restarted.start(spec)
    assert kube.names("v1/pods") == [POD]
    assert restarted.known_runs() == {(5, 2)}
    assert set(restarted.observe(5, 2)) == {"jupyter", "startup", "ssh", "web", "db"}


def test_status_follows_the_pod_phase_and_each_services_container(
    kube: KubeServer, core: client.CoreV1Api, make_container_backend: MakeBackend
) -> None:
    backend = make_container_backend()
    backend.start(make_spec())
    pending = backend.observe(5, 2)
    assert {o.phase for o in pending.values()} == {RankPhase.PENDING}
    assert backend.endpoints(5, 2) == {}
    core.patch_namespaced_pod_status(
        POD,
        NAMESPACE,
        {
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
                ],
            }
        },
    )
    assert backend.observe(5, 2)["jupyter"].message == "Unschedulable: 0/3 nodes"
    pod_running(core, ended={"startup": 0, "db": 3})
    observed = backend.observe(5, 2)
    assert {name: o.phase for name, o in observed.items()} == {
        "jupyter": RankPhase.RUNNING,
        "startup": RankPhase.SUCCEEDED,
        "ssh": RankPhase.RUNNING,
        "web": RankPhase.RUNNING,
        "db": RankPhase.FAILED,
    }
    assert observed["db"].exit_code == 3
    assert observed["db"].message == "Error"
    # The proxy goes straight to the pod: only the HTTP services have an address.
    assert backend.endpoints(5, 2) == {"jupyter": "10.1.2.3:8888", "web": "10.1.2.3:8080"}


def test_an_image_that_can_never_run_fails_jupyterlab_with_the_kubelets_reason() -> None:
    pod = ContainerManifests(namespace=NAMESPACE).build_pod(make_spec(), "u")
    waiting = {"waiting": {"reason": "InvalidImageName", "message": "bad ref"}}
    pod["status"] = {"phase": "Pending", "containerStatuses": [container_state("jupyter", waiting)]}
    observed = service_observations(
        pod, stop_reason_annotation="rota.dev/stop-reason", services_annotation="rota.dev/services"
    )
    assert (observed["jupyter"].phase, observed["jupyter"].message) == (RankPhase.FAILED, "InvalidImageName: bad ref")
    assert observed["web"].phase == RankPhase.PENDING


def test_stop_annotates_then_deletes_and_a_vanished_pod_reads_killed_until_released(
    kube: KubeServer, core: client.CoreV1Api, make_container_backend: MakeBackend
) -> None:
    backend = make_container_backend(relist_interval=0.2)
    backend.start(make_spec())
    pod_running(core)
    backend.start_watching()
    assert backend.wait_synced(10)
    backend.stop(5, 2)
    service = kube.get("v1/services", NAMESPACE, f"rota-c-{KEY}")
    assert service is not None and service["metadata"]["annotations"]["rota.dev/stop-reason"] == "stop"
    deletes = kube.requests(method="DELETE", resource="pods")
    assert len(deletes) == 1 and deletes[0].name == POD
    assert kube.get("v1/pods", NAMESPACE, POD) is None  # kmock deletes at once
    observed = wait_until(
        lambda: (o := backend.observe(5, 2)) and all(s.phase.is_final for s in o.values()) and o, what="tombstones"
    )
    assert {s.phase for s in observed.values()} == {RankPhase.KILLED}
    backend.stop(5, 2)  # repeats are harmless: nothing is deleted twice
    assert len(kube.requests(method="DELETE", resource="pods")) == 1
    backend.start(make_spec())  # a stopped run is never started again
    assert kube.names("v1/pods") == []
    backend.release(5, 2)
    assert kube.names("v1/services") == [] and kube.names("v1/secrets") == []
    assert backend.observe(5, 2) == {}
    assert backend.known_runs() == set()


def test_a_pod_deleted_behind_rotas_back_is_reported_missing(
    kube: KubeServer, core: client.CoreV1Api, make_container_backend: MakeBackend
) -> None:
    backend = make_container_backend()
    backend.start(make_spec())
    pod_running(core)
    core.delete_namespaced_pod(POD, NAMESPACE)
    restarted = make_container_backend()  # a portal restarted meanwhile: only the Service is left
    assert restarted.observe(5, 2) == {
        "jupyter": restarted.observe(5, 2)["jupyter"],
    }
    assert restarted.observe(5, 2)["jupyter"].phase == RankPhase.MISSING
    assert restarted.known_runs() == {(5, 2)}


def test_a_watch_event_updates_the_cached_pod(
    kube: KubeServer, core: client.CoreV1Api, make_container_backend: MakeBackend, pod_watch: StreamScript
) -> None:
    backend = make_container_backend(relist_interval=60)
    backend.start(make_spec())
    backend.start_watching()
    assert backend.wait_synced(10)
    wait_until(lambda: pod_watch.opened >= 1, what="the watch")
    pod_running(core)
    pod_watch.push({"type": "MODIFIED", "object": kube.get("v1/pods", NAMESPACE, POD)})
    wait_until(lambda: backend.endpoints(5, 2).get("jupyter") == "10.1.2.3:8888", what="the watched pod")
    reads = len(kube.requests(method="GET", resource="pods", name=POD))
    assert backend.observe(5, 2)["jupyter"].phase == RankPhase.RUNNING
    assert len(kube.requests(method="GET", resource="pods", name=POD)) == reads  # from the cache


def test_restarting_one_service_bumps_its_annotation(kube: KubeServer, make_container_backend: MakeBackend) -> None:
    backend = make_container_backend()
    spec = make_spec()
    backend.start(spec)
    backend.restart_service(spec, "web")
    first = kube.get("v1/pods", NAMESPACE, POD)["metadata"]["annotations"]["rota.dev/restart-web"]  # type: ignore[index]
    backend.restart_service(spec, "web")
    second = kube.get("v1/pods", NAMESPACE, POD)["metadata"]["annotations"]["rota.dev/restart-web"]  # type: ignore[index]
    assert first != second
    backend.restart_service(spec, "nope")
    assert "rota.dev/restart-nope" not in kube.get("v1/pods", NAMESPACE, POD)["metadata"]["annotations"]  # type: ignore[index]
    volume = next(v for v in kube.get("v1/pods", NAMESPACE, POD)["spec"]["volumes"] if v["name"] == "rota-restart")  # type: ignore[index]
    assert {"path": "web", "fieldRef": {"fieldPath": "metadata.annotations['rota.dev/restart-web']"}} in volume[
        "downwardAPI"
    ]["items"]


def test_service_logs_go_to_the_container_log_store_per_service(
    kube: KubeServer, core: client.CoreV1Api, make_container_backend: MakeBackend, pod_logs: StreamScript
) -> None:
    class Journal:
        def __init__(self) -> None:
            self.lines: dict[tuple[int, int], list[str]] = {}

        def accepting(self) -> bool:
            return True

        def position(self, attempt_id: int, rank: int) -> None:
            return None

        def append(self, attempt_id: int, rank: int, lines: Any) -> int:
            self.lines.setdefault((attempt_id, rank), []).extend(text for _, text in lines)
            return len(lines)

    journal = Journal()
    backend = make_container_backend(log_journal=journal, relist_interval=0.2)
    backend.start(make_spec())
    pod_running(core)
    backend.start_watching()
    wait_until(lambda: pod_logs.opened == 5, what="five log streams")
    containers = sorted(r.params.get("container") for r in pod_logs.requests)
    assert containers == ["db", "jupyter", "ssh", "startup", "web"]
    web = next(i for i, r in enumerate(pod_logs.requests) if r.params.get("container") == "web")
    pod_logs._server.call(lambda: pod_logs._sessions[web].put_nowait(b"2030-01-01T10:00:01.000000001Z serving\n"))
    wait_until(lambda: journal.lines.get((KEY, 3)) == ["serving"], what="the web service's line")
    assert backend.active_log_streams() >= {(KEY, 3)}


# -- the restart wrapper, for real -----------------------------------------------------------------


def test_the_wrapper_restarts_its_service_when_the_annotation_file_changes(tmp_path: Path) -> None:
    marker = tmp_path / "restart"
    marker.write_text("1")
    runs = tmp_path / "runs"
    service = f"echo started >> {runs}; exec sleep 60"
    proc = subprocess.Popen(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", "bash", "-c", service],
        env={**os.environ, "ROTA_RESTART_FILE": str(marker)},
        start_new_session=True,
    )
    try:
        wait_until(lambda: runs.exists() and runs.read_text().count("started") == 1, timeout=10, what="first start")
        marker.write_text("2")
        wait_until(lambda: runs.read_text().count("started") == 2, timeout=15, what="the restart")
        assert proc.poll() is None  # the container goes on
        proc.terminate()  # the kubelet's stop: the service ends and so does the wrapper
        assert proc.wait(15) == 143
        assert runs.read_text().count("started") == 2
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(5)


def test_the_wrapper_exits_with_the_services_status_when_it_ends_on_its_own(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", sys.executable, "-c", "raise SystemExit(7)"],
        env={**os.environ, "ROTA_RESTART_FILE": str(tmp_path / "absent")},
        timeout=30,
        check=False,
    )
    assert result.returncode == 7


#: A service's Python: logs ``started <pid>``, and on SIGTERM (unless told to ignore it) takes a
#: few seconds to save its state, logs ``saved`` and exits 3.
SAVING_PYTHON = """
import os, pathlib, signal, sys, time
log = pathlib.Path(sys.argv[1])
def term(*_):
    time.sleep(3)
    with log.open("a") as f:
        f.write("saved\\n")
    sys.exit(3)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2:] == ["ignore"] else term)
with log.open("a") as f:
    f.write(f"started {os.getpid()}\\n")
while True:
    time.sleep(0.05)
"""


def _bash_service_with_python(tmp_path: Path, *extra: str) -> tuple[str, Path]:
    """A ``bash -c`` service whose Python child does the work. Two commands, so the bash stays as
    the group leader (``bash -c`` with one command would ``exec`` it) and dies of a TERM at once."""
    script = tmp_path / "service.py"
    script.write_text(SAVING_PYTHON)
    log = tmp_path / "service.log"
    return f"{sys.executable} {script} {log} {' '.join(extra)}; echo the python ended", log


def _pids(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("started ")]


def _end_left_over(proc: subprocess.Popen[bytes], *pids: int) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 9)
        proc.wait(5)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_on_a_stop_the_wrapper_waits_for_the_python_under_a_bash_service(tmp_path: Path) -> None:
    """The kubelet's TERM to PID 1: the ``bash -c`` leader dies of it at once, but the wrapper (whose
    exit would kill everything left in the container) exits only once its Python has saved."""
    service, log = _bash_service_with_python(tmp_path)
    proc = subprocess.Popen(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", "bash", "-c", service],
        env={**os.environ, "ROTA_RESTART_FILE": str(tmp_path / "absent"), "ROTA_STOP_GRACE_SECONDS": "30"},
        start_new_session=True,
    )
    try:
        wait_until(lambda: log.exists() and _pids(log), timeout=10, what="the service's Python")
        proc.terminate()
        assert proc.wait(15) == 143  # the service's status: its bash, killed by the TERM
        assert log.read_text().splitlines()[1:] == ["saved"]  # written before the wrapper exited
    finally:
        _end_left_over(proc, *(_pids(log) if log.exists() else ()))


def test_on_a_stop_the_wrapper_kills_what_is_left_at_the_end_of_the_grace(tmp_path: Path) -> None:
    service, log = _bash_service_with_python(tmp_path, "ignore")
    proc = subprocess.Popen(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", "bash", "-c", service],
        env={**os.environ, "ROTA_RESTART_FILE": str(tmp_path / "absent"), "ROTA_STOP_GRACE_SECONDS": "1"},
        start_new_session=True,
    )
    try:
        python = wait_until(lambda: log.exists() and _pids(log), timeout=10, what="the service's Python")[0]
        proc.terminate()
        assert proc.wait(15) == 143
        wait_until(lambda: not _alive(python), timeout=5, what="the Python that ignores TERM to be killed")
        assert "saved" not in log.read_text()
    finally:
        _end_left_over(proc, *(_pids(log) if log.exists() else ()))


def test_a_service_that_ends_on_its_own_is_not_held_by_a_leftover_background_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    proc = subprocess.Popen(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", "bash", "-c", f"sleep 300 & echo $! > {pid_file}; exit 4"],
        env={**os.environ, "ROTA_RESTART_FILE": str(tmp_path / "absent"), "ROTA_STOP_GRACE_SECONDS": "30"},
        start_new_session=True,
    )
    try:
        assert proc.wait(10) == 4  # at once, whatever the service left behind
        assert _alive(int(pid_file.read_text()))  # (in a pod, PID 1's exit ends it)
    finally:
        _end_left_over(proc, *([int(pid_file.read_text())] if pid_file.exists() else []))


def test_a_restart_lets_the_services_python_save_before_starting_it_again(tmp_path: Path) -> None:
    marker = tmp_path / "restart"
    marker.write_text("1")
    service, log = _bash_service_with_python(tmp_path)
    proc = subprocess.Popen(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", "bash", "-c", service],
        env={**os.environ, "ROTA_RESTART_FILE": str(marker), "ROTA_STOP_GRACE_SECONDS": "30"},
        start_new_session=True,
    )
    try:
        first = wait_until(lambda: log.exists() and _pids(log), timeout=10, what="the first start")[0]
        marker.write_text("2")
        wait_until(lambda: len(_pids(log)) == 2, timeout=15, what="the restart")
        # The first Python saved before the second one started; the container goes on.
        assert [line.split()[0] for line in log.read_text().splitlines()] == ["started", "saved", "started"]
        assert not _alive(first)
        assert proc.poll() is None
    finally:
        _end_left_over(proc, *(_pids(log) if log.exists() else ()))


def test_a_restart_kills_what_ignores_the_term_at_the_end_of_the_grace_and_starts_again(tmp_path: Path) -> None:
    marker = tmp_path / "restart"
    marker.write_text("1")
    service, log = _bash_service_with_python(tmp_path, "ignore")
    proc = subprocess.Popen(
        ["bash", "-c", SERVICE_WRAPPER, "rota-service", "bash", "-c", service],
        env={**os.environ, "ROTA_RESTART_FILE": str(marker), "ROTA_STOP_GRACE_SECONDS": "1"},
        start_new_session=True,
    )
    try:
        first = wait_until(lambda: log.exists() and _pids(log), timeout=10, what="the first start")[0]
        marker.write_text("2")
        wait_until(lambda: len(_pids(log)) == 2, timeout=15, what="the restart")
        assert not _alive(first)
        assert "saved" not in log.read_text()
        assert proc.poll() is None
    finally:
        _end_left_over(proc, *(_pids(log) if log.exists() else ()))


def test_the_pods_services_get_the_grace_as_the_wrappers_bound() -> None:
    pod = ContainerManifests(namespace=NAMESPACE, termination_grace_seconds=25).build_pod(make_spec(), "uid-1")
    assert pod["spec"]["terminationGracePeriodSeconds"] == 25
    for container in pod["spec"]["containers"]:
        assert {e["name"]: e.get("value") for e in container["env"]}["ROTA_STOP_GRACE_SECONDS"] == "25"


def test_the_stop_grace_setting_is_the_container_pods_grace(
    api_client: client.ApiClient, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ROTA_CONTAINERS['STOP_GRACE_SECONDS']`` reaches the backend the portal builds: the pods'
    ``terminationGracePeriodSeconds``, their wrapper's bound and the grace of the stop's delete."""
    from apps.launcher import backends

    settings.ROTA_BACKEND = "kubernetes"
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "STOP_GRACE_SECONDS": 25, "INGRESS_HOST": ""}
    monkeypatch.setattr(backends, "_kube_api_client", lambda: api_client)
    backends.reset_backend()
    try:
        backend = backends.get_container_backend()
        assert isinstance(backend, KubernetesContainerBackend)
        pod = backend.manifests.build_pod(make_spec(), "uid-1")
        assert pod["spec"]["terminationGracePeriodSeconds"] == 25
        for container in pod["spec"]["containers"]:
            assert {e["name"]: e.get("value") for e in container["env"]}["ROTA_STOP_GRACE_SECONDS"] == "25"
    finally:
        backends.reset_backend()


# -- the launcher's container pass with the database ------------------------------------------------


@pytest.fixture
def k8s_containers(
    cluster: Any, settings: Any, kube: KubeServer, api_client: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The platform on the Kubernetes backend: a GPU group of two nodes, container quota. The
    scheduling pass runs after each commit (placement); the tests run the container passes."""
    from apps.launcher import tasks

    monkeypatch.setattr(tasks, "container_reconcile_pass", lambda: False)
    from django.contrib.auth.models import Group

    from apps.cluster import services as cluster_services
    from apps.quotas import services as quota_services

    settings.ROTA_BACKEND = "kubernetes"
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "NODE_PORT_MIN": 30100, "NODE_PORT_MAX": 30101}
    group = cluster_services.node_group_upsert(actor=None, name="jupyter_gpu")
    for i in range(2):
        cluster_services.node_upsert(
            actor=None, name=f"g{i}", group=group, gpu_count=4, cpu=16, memory_bytes=64 * 2**30
        )
    public = Group.objects.get_or_create(name="public")[0]
    for kind, value in (
        ("jupyter_containers", 3),
        ("jupyter_cpu", 16),
        ("jupyter_memory_gib", 64),
        ("jupyter_gpus", 4),
        ("jupyter_ports", 2),
    ):
        quota_services.quota_set(actor=None, kind=kind, node_group=group, value=value, group=public)
    backend = KubernetesContainerBackend(api_client, namespace=NAMESPACE, default_image="lab:1", relist_interval=0.2)
    backend.start_watching()
    assert backend.wait_synced(10)
    yield group, backend
    backend.close()


def _pass(backend: KubernetesContainerBackend) -> Any:
    from apps.launcher.container_reconcile import reconcile_containers

    return reconcile_containers(backend)


def _stopped(backend: KubernetesContainerBackend, container_id: int) -> bool:
    from apps.containers.choices import ContainerStatus
    from apps.containers.models import Container

    _pass(backend)
    return Container.objects.get(pk=container_id).status == ContainerStatus.STOPPED


def test_a_container_starts_runs_opens_through_the_proxy_and_stops_on_kubernetes(
    k8s_containers: Any, kube: KubeServer, core: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from apps.containers import proxy
    from apps.containers import services as container_services
    from apps.containers.choices import ContainerStatus
    from apps.launcher import container_reconcile
    from apps.launcher.pods import FALLBACK_UID_BASE
    from tests.factories import UserFactory

    group, backend = k8s_containers
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    c = container_services.container_create(
        actor=alice, name="lab", node_group=group, cpu=2, memory_gib=8, gpus=1, ssh=True
    )
    c.refresh_from_db()
    assert c.status == ContainerStatus.STARTING  # placed by the scheduling pass after the commit
    asked: list[tuple[str, str]] = []

    def answers(address: str, spec: ContainerSpec, timeout: float = 1.0) -> bool:
        asked.append((address, spec.token))
        return True

    monkeypatch.setattr(container_reconcile, "jupyter_answers", answers)
    monkeypatch.setattr(container_reconcile, "jupyter_last_activity", lambda address, spec, timeout=1.0: None)
    assert _pass(backend).started == [c.pk]
    c.refresh_from_db()
    name = f"rota-c-{run_key(c.pk, c.run)}"
    pod = kube.get("v1/pods", NAMESPACE, name)
    assert pod is not None
    assert pod["spec"]["securityContext"]["runAsUser"] == FALLBACK_UID_BASE + alice.pk  # no mapped account
    jupyter = pod["spec"]["containers"][0]
    assert jupyter["resources"]["limits"] == {"cpu": "2", "memory": str(8 * 2**30), "nvidia.com/gpu": "1"}
    assert c.ssh_node_port == 30100  # from the configured range
    tcp = kube.get("v1/services", NAMESPACE, f"{name}-tcp")
    assert tcp is not None and tcp["spec"]["ports"][0]["nodePort"] == 30100
    assert c.status == ContainerStatus.STARTING and asked == []  # no address before the pod runs

    started = "2030-01-01T10:00:00Z"
    status = {
        "phase": "Running",
        "podIP": "10.9.8.7",
        "containerStatuses": [container_state(n, {"running": {"startedAt": started}}) for n in ("jupyter", "ssh")],
    }
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": status})
    wait_until(lambda: backend.endpoints(c.pk, c.run), what="the relisted pod")
    assert _pass(backend).running == [c.pk]
    c.refresh_from_db()
    assert c.status == ContainerStatus.RUNNING
    assert asked == [("10.9.8.7:8888", container_reconcile.container_token(c.pk, c.run))]
    assert c.endpoints == {"jupyter": "10.9.8.7:8888"}

    # The portal's proxy sends the owner to the pod with the run's token; bob is told nothing.
    code, target, _ = asyncio.run(proxy._lookup(alice, "alice", "lab", "lab"))
    assert (code, target.address if target else None) == (200, "10.9.8.7:8888")
    assert asyncio.run(proxy._lookup(bob, "alice", "lab", "lab"))[0] == 404

    container_services.container_stop(actor=alice, container=c)
    _pass(backend)
    assert kube.get("v1/pods", NAMESPACE, name) is None
    wait_until(lambda: _stopped(backend, c.pk), what="the stop to complete")
    c.refresh_from_db()
    assert (c.status, c.node_id) == (ContainerStatus.STOPPED, None)
    assert kube.names("v1/services") == [] and kube.names("v1/pods") == []
    assert c.ssh_node_port == 30100  # kept for the next run: the SSH command does not change


def test_the_admins_pod_settings_of_the_group_and_environment_reach_the_container_pod(
    k8s_containers: Any, kube: KubeServer
) -> None:
    from django.contrib.auth.models import Group

    from apps.accounts import services as account_services
    from apps.cluster import services as cluster_services
    from apps.containers import services as container_services
    from apps.quotas import services as quota_services
    from tests.factories import UserFactory

    group, backend = k8s_containers
    group = cluster_services.node_group_upsert(
        actor=None,
        name=group.name,
        pod_settings={
            "tolerations": [{"key": "fabric", "operator": "Exists", "effect": "NoSchedule"}],
            "resources": {"rdma/hca_shared_devices_a": 1},
            "host_network": True,
            "memlock": True,
            "annotations": {"team": "infra", "prometheus.io/scrape": "true"},
            "env": {"NCCL_IB_HCA": "mlx5", "NCCL_DEBUG": "WARN"},
        },
    )
    environment = cluster_services.environment_upsert(
        actor=None,
        name="torch",
        image="registry.example/torch:2",
        env_vars={"NCCL_DEBUG": "INFO"},
        pod_settings={
            "runtime_class_name": "nvidia",
            "priority_class_name": "interactive",
            "annotations": {"team": "vision"},
            "capabilities": ["SYS_PTRACE"],
        },
    )
    public = Group.objects.get(name="public")
    quota_services.quota_set(actor=None, kind="environment", environment=environment, value=1, group=public)
    alice = UserFactory(username="alice")
    account_services.user_update(actor=None, user=alice, posix_uid=4201, posix_gid=4200)
    c = container_services.container_create(actor=alice, name="lab", node_group=group, environment=environment, gpus=1)
    assert _pass(backend).started == [c.pk]
    c.refresh_from_db()
    pod = kube.get("v1/pods", NAMESPACE, f"rota-c-{run_key(c.pk, c.run)}")
    assert pod is not None
    spec = pod["spec"]
    assert spec["tolerations"] == [{"key": "fabric", "operator": "Exists", "effect": "NoSchedule"}]
    assert (spec["runtimeClassName"], spec["priorityClassName"]) == ("nvidia", "interactive")
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (4201, 4200)
    assert pod["metadata"]["annotations"]["team"] == "vision"  # the environment's wins
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    jupyter = spec["containers"][0]
    assert jupyter["image"] == "registry.example/torch:2"
    assert jupyter["resources"]["limits"]["rdma/hca_shared_devices_a"] == "1"
    assert jupyter["resources"]["requests"]["rdma/hca_shared_devices_a"] == "1"
    assert jupyter["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK", "SYS_PTRACE"]}
    env = {e["name"]: e.get("value") for e in jupyter["env"]}
    # The pod settings' variables, then the environment's own; Rota's identity over both.
    assert (env["NCCL_IB_HCA"], env["NCCL_DEBUG"]) == ("mlx5", "INFO")
    assert (env["USER"], env["HOME"]) == ("alice", "/home/alice")
    kubernetes_validate.validate(without_server_fields(pod), K8S_VERSION, strict=True)


def test_a_restarted_portal_neither_loses_nor_duplicates_a_running_container(
    k8s_containers: Any, kube: KubeServer, core: client.CoreV1Api, api_client: client.ApiClient, monkeypatch: Any
) -> None:
    from apps.containers import services as container_services
    from apps.containers.choices import ContainerStatus, StopReason
    from apps.launcher import container_reconcile
    from tests.factories import UserFactory

    group, backend = k8s_containers
    alice = UserFactory(username="alice")
    monkeypatch.setattr(container_reconcile, "jupyter_answers", lambda address, spec, timeout=1.0: True)
    monkeypatch.setattr(container_reconcile, "jupyter_last_activity", lambda address, spec, timeout=1.0: None)
    c = container_services.container_create(actor=alice, name="lab", node_group=group)
    _pass(backend)
    c.refresh_from_db()
    name = f"rota-c-{run_key(c.pk, c.run)}"
    running = {
        "phase": "Running",
        "podIP": "10.0.0.5",
        "containerStatuses": [container_state("jupyter", {"running": {}})],
    }
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": running})
    wait_until(lambda: backend.endpoints(c.pk, c.run), what="the pod running")
    assert _pass(backend).running == [c.pk]
    backend.close()

    restarted = KubernetesContainerBackend(api_client, namespace=NAMESPACE, default_image="lab:1", relist_interval=0.2)
    try:
        restarted.start_watching()
        assert restarted.wait_synced(10)
        for _ in range(3):
            result = _pass(restarted)
            assert result.cleaned == [] and result.failed == {}
        c.refresh_from_db()
        assert c.status == ContainerStatus.RUNNING
        assert kube.names("v1/pods") == [name]
        assert len(kube.requests(method="POST", resource="pods")) == 1

        # The pod is deleted behind Rota's back: the container fails and says why.
        core.delete_namespaced_pod(name, NAMESPACE)
        wait_until(lambda: _pass(restarted).failed, what="the lost pod to be noticed")
        c.refresh_from_db()
        assert c.status == ContainerStatus.FAILED and c.stop_reason == StopReason.FAILED
        assert "pod deleted, not by Rota" in c.status_message
    finally:
        restarted.close()


def test_idle_reclaim_stops_an_idle_container_on_kubernetes(
    k8s_containers: Any, kube: KubeServer, core: client.CoreV1Api, monkeypatch: Any
) -> None:
    from django.utils import timezone

    from apps.containers import services as container_services
    from apps.containers.choices import ContainerStatus, StopReason
    from apps.containers.models import Container
    from apps.launcher import container_reconcile
    from tests.factories import UserFactory

    group, backend = k8s_containers
    alice = UserFactory(username="alice")
    long_ago = timezone.now() - timedelta(days=2)
    monkeypatch.setattr(container_reconcile, "jupyter_answers", lambda address, spec, timeout=1.0: True)
    monkeypatch.setattr(container_reconcile, "jupyter_last_activity", lambda address, spec, timeout=1.0: long_ago)
    c = container_services.container_create(actor=alice, name="lab", node_group=group)
    _pass(backend)
    c.refresh_from_db()
    name = f"rota-c-{run_key(c.pk, c.run)}"
    running = {
        "phase": "Running",
        "podIP": "10.0.0.6",
        "containerStatuses": [container_state("jupyter", {"running": {}})],
    }
    core.patch_namespaced_pod_status(name, NAMESPACE, {"status": running})
    wait_until(lambda: backend.endpoints(c.pk, c.run), what="the pod running")
    container_reconcile._last_activity_check.clear()
    _pass(backend)
    Container.objects.filter(pk=c.pk).update(started_at=long_ago, queued_at=long_ago, last_activity_at=long_ago)
    now = timezone.now()
    assert container_services.containers_reclaim_idle(now)["warned"] == [c.pk]
    assert container_services.containers_reclaim_idle(now + timedelta(hours=2))["stopped"] == [c.pk]
    c.refresh_from_db()
    assert (c.status, c.stop_reason) == (ContainerStatus.STOPPING, StopReason.IDLE)
    _pass(backend)
    assert kube.get("v1/pods", NAMESPACE, name) is None
    wait_until(lambda: _stopped(backend, c.pk), what="the idle container to stop")


def test_a_container_without_node_ports_left_fails_with_the_reason(
    k8s_containers: Any, kube: KubeServer, settings: Any
) -> None:
    from apps.containers import services as container_services
    from apps.containers.choices import ContainerStatus
    from tests.factories import UserFactory

    group, backend = k8s_containers
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "NODE_PORT_MIN": 30100, "NODE_PORT_MAX": 30100}
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first = container_services.container_create(actor=alice, name="one", node_group=group, ssh=True)
    second = container_services.container_create(actor=bob, name="two", node_group=group, ssh=True)
    result = _pass(backend)
    assert result.started == [first.pk]
    assert list(result.failed) == [second.pk]
    second.refresh_from_db()
    assert second.status == ContainerStatus.FAILED
    assert second.status_message == container_services.NODE_PORTS_EXHAUSTED
    assert second.ssh_node_port is None
    assert list(kube.names("v1/pods")) == [f"rota-c-{run_key(first.pk, 1)}"]


_ = kmock  # the emulator's DSL is used through the conftest's scripts
