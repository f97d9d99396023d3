"""The deploy files: every Kubernetes manifest (ours and the pods Rota generates) validates against
the API schema (kubernetes-validate, strict), and the files keep the properties operations rely on."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apps.launcher.backends.base import EntrypointKind, LaunchSpec, MountSpec, RankSpec
from apps.launcher.backends.kubernetes.manifests import Manifests

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.31"  # the oldest Kubernetes release the manifests target


def manifests() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "rota.yaml").read_text()) if doc]


def by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_deploy_manifests_are_valid_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_generated_job_objects_are_valid_kubernetes() -> None:
    spec = LaunchSpec(
        attempt_id=7,
        chain_id="chain-abc",
        user="alice",
        uid=4201,
        gid=4200,
        workspace="/home/alice/proj",
        kind=EntrypointKind.BASH,
        entrypoint="run.sh",
        parameters=("--lr", "0.1"),
        interpreter="python3",
        image="registry.example/train:1",
        ranks=tuple(RankSpec(rank=r, node=f"gpu-{r}", env={"ROTA_TASK_TOKEN": "t", "RANK": str(r)}) for r in (0, 1)),
        cpu=62.5,
        memory_bytes=496 * 2**30,
        gpus_per_rank=8,
        mounts=(MountSpec("host_path", "/data", "/data", True), MountSpec("pvc", "home", "/home/alice")),
        capabilities=("IPC_LOCK",),
    )
    m = Manifests(namespace="rota-jobs", image_pull_secrets=("regcred",))
    objects = [m.build_service(spec), m.build_secret(spec, "uid-1")]
    objects += [m.build_pod(spec, rank, "uid-1") for rank in spec.ranks]
    for obj in objects:
        assert obj is not None
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_web_pods_get_no_api_credentials_and_the_worker_is_never_doubled() -> None:
    web = by_kind("Deployment", "rota-web")["spec"]["template"]["spec"]
    assert web["serviceAccountName"] == "rota-web" and web["automountServiceAccountToken"] is False
    assert by_kind("ServiceAccount", "rota-web")["automountServiceAccountToken"] is False
    bound = [
        s["name"] for d in manifests() if d["kind"] in ("RoleBinding", "ClusterRoleBinding") for s in d["subjects"]
    ]
    assert set(bound) == {"rota-worker"}
    worker = by_kind("Deployment", "rota-worker")["spec"]
    assert worker["strategy"] == {"type": "Recreate"} and worker["replicas"] == 1
    container = web["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    probed = []
    for deployment in ("rota-web", "rota-worker"):
        for c in by_kind("Deployment", deployment)["spec"]["template"]["spec"]["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
            assert not c["image"].endswith(":latest")
            probed.append((c["name"], next(iter(c["livenessProbe"]))))
    # Every long-running container has a liveness probe (the two exec ones are tested below).
    assert probed == [("web", "httpGet"), ("passes", "exec"), ("qcluster", "exec")]
    migrate = by_kind("Job", "rota-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_namespaces_carry_pod_security_labels_and_jobs_take_no_foreign_traffic() -> None:
    assert by_kind("Namespace", "rota")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert by_kind("Namespace", "rota-jobs")["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "baseline"
    policy = by_kind("NetworkPolicy", "jobs-only-from-jobs")
    assert policy["metadata"]["namespace"] == "rota-jobs"
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_image_is_pinned_and_secrets_stay_out_of_it() -> None:
    base = re.search(r"^FROM (\S+)", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert base is not None and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[1])
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".env.*", "var/", ".venv/", ".git/", "deploy/.env", "deploy/kubeconfig"} <= ignored


def test_compose_starts_production_with_passwords_and_keeps_kube_credentials_out_of_web() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("migrate", "web", "worker", "qcluster"):
        env = services[name]["environment"]
        assert env["DEBUG"] == "false" and env["ROTA_ENV"] == "production"
        assert ":?set POSTGRES_PASSWORD" in env["DATABASE_URL"] and ":?set REDIS_PASSWORD" in env["REDIS_URL"]
    assert "--requirepass" in services["redis"]["command"]
    assert ":?" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert not any("kube" in v for v in services["web"]["volumes"])
    assert "KUBECONFIG" not in services["web"]["environment"]
    assert any(v.endswith("/kube/config:ro") for v in services["worker"]["volumes"])


def test_the_worker_liveness_probe_tells_live_loops_from_a_hung_one(tmp_path, settings) -> None:
    import os
    import subprocess
    import time

    from apps.core.loops import heartbeat

    passes = by_kind("Deployment", "rota-worker")["spec"]["template"]["spec"]["containers"][0]
    directory = {e["name"]: e["value"] for e in passes["env"]}["ROTA_WORKER_HEARTBEAT_DIR"]
    command = [part.replace(directory, str(tmp_path / "alive")) for part in passes["livenessProbe"]["exec"]["command"]]

    def probe() -> int:
        return subprocess.run(command, capture_output=True, timeout=30).returncode

    assert probe() == 1  # no loop has come round yet (initialDelaySeconds covers the start)
    settings.ROTA_WORKER_HEARTBEAT_DIR = str(tmp_path / "alive")
    heartbeat("scheduler")
    assert probe() == 1  # the launcher loop has not
    heartbeat("launcher")
    assert probe() == 0
    six_minutes_ago = time.time() - 360
    os.utime(tmp_path / "alive" / "launcher", (six_minutes_ago, six_minutes_ago))
    assert probe() == 1  # a hung reconcile pass: restart
    heartbeat("launcher")
    assert probe() == 0
    settings.ROTA_WORKER_HEARTBEAT_DIR = ""
    heartbeat("containers")  # off: writes nothing
    assert not (tmp_path / "alive" / "containers").exists()


def qcluster_probe(tmp_path: pathlib.Path) -> list[str]:
    """The qcluster container's liveness probe, reading ``tmp_path/alive`` instead of its /tmp."""
    qcluster = next(
        c
        for c in by_kind("Deployment", "rota-worker")["spec"]["template"]["spec"]["containers"]
        if c["name"] == "qcluster"
    )
    directory = {e["name"]: e["value"] for e in qcluster["env"]}["ROTA_WORKER_HEARTBEAT_DIR"]
    return [part.replace(directory, str(tmp_path / "alive")) for part in qcluster["livenessProbe"]["exec"]["command"]]


class FakeRedis:
    """Stands for the broker's Redis connection: records status saves, or fails like a lost Redis."""

    def __init__(self) -> None:
        self.saved: list[str] = []
        self.down = False

    def set(self, key: str, value: str, timeout: int) -> None:
        if self.down:
            raise ConnectionError("Redis is gone")
        self.saved.append(key)


def test_the_qcluster_liveness_probe_follows_the_sentinels_status_saves(tmp_path, settings, monkeypatch) -> None:
    """The broker's part, with a fake Redis; a real qcluster on real Redis:
    tests/core/test_deploy_startup.py::test_the_kubernetes_qcluster_keeps_its_liveness_file_fresh."""
    import os
    import subprocess
    import time

    from apps.core import qcluster

    command = qcluster_probe(tmp_path)
    connection = FakeRedis()
    monkeypatch.setattr(qcluster.HeartbeatRedis, "get_connection", staticmethod(lambda list_key=None: connection))
    clock = [1000.0]
    monkeypatch.setattr(qcluster.time, "monotonic", lambda: clock[0])
    settings.ROTA_WORKER_HEARTBEAT_DIR = str(tmp_path / "alive")
    broker = qcluster.HeartbeatRedis(list_key="rota")
    beat = tmp_path / "alive" / "qcluster"

    def probe() -> int:
        return subprocess.run(command, capture_output=True, timeout=30).returncode

    def age(seconds: float) -> None:
        then = time.time() - seconds
        os.utime(beat, (then, then))

    assert probe() == 1  # the cluster has not started yet (initialDelaySeconds covers the start)
    broker.set_stat("django_q:rota:cluster:1", "status", 3)
    assert connection.saved == ["django_q:rota:cluster:1"] and probe() == 0
    age(180)
    assert probe() == 1  # the guard loop stopped saving its status three minutes ago: restart
    clock[0] += 1.0
    broker.set_stat("django_q:rota:cluster:1", "status", 3)
    assert probe() == 1  # at most one touch per TOUCH_INTERVAL_SECONDS (the guard cycles every 0.5 s)
    clock[0] += qcluster.TOUCH_INTERVAL_SECONDS
    broker.set_stat("django_q:rota:cluster:1", "status", 3)
    assert probe() == 0
    # Redis lost: the save fails as before (django-q2 logs it) but the process is alive.
    connection.down = True
    age(180)
    clock[0] += qcluster.TOUCH_INTERVAL_SECONDS
    with pytest.raises(ConnectionError):
        broker.set_stat("django_q:rota:cluster:1", "status", 3)
    assert probe() == 0 and len(connection.saved) == 3
    settings.ROTA_WORKER_HEARTBEAT_DIR = ""
    beat.unlink()
    clock[0] += qcluster.TOUCH_INTERVAL_SECONDS
    connection.down = False
    broker.set_stat("django_q:rota:cluster:1", "status", 3)
    assert not beat.exists()  # off: writes nothing
