"""GPU utilisation as an idle signal: on a GPU group a container is idle only when JupyterLab is
quiet *and* its GPUs stayed under the group's threshold for the idle time; a reading the backend
cannot give counts as busy. Time and utilisation are driven by the test; the backends' readers
(nvidia-smi locally, Prometheus + DCGM exporter on Kubernetes) are run against fakes."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import Group

from apps.cluster import services as cluster_services
from apps.containers import services
from apps.containers.choices import ContainerStatus, StopReason
from apps.containers.models import Container, ContainerGroupPolicy
from apps.launcher import container_reconcile
from apps.launcher.backends.container_local import LocalContainerBackend
from apps.launcher.backends.kubernetes.gpu_metrics import PrometheusGpuMetrics
from apps.logs.store import LogStore
from apps.quotas import services as quota_services

GIB = 2**30


@pytest.fixture
def gpu_group(transactional_db):
    group = cluster_services.node_group_upsert(actor=None, name="jupyter_gpu")
    cluster_services.node_upsert(actor=None, name="g0", group=group, gpu_count=8, cpu=32, memory_bytes=256 * GIB)
    public = Group.objects.get_or_create(name="public")[0]
    for kind, value in (
        ("jupyter_containers", 3),
        ("jupyter_cpu", 16),
        ("jupyter_memory_gib", 64),
        ("jupyter_gpus", 4),
        ("jupyter_ports", 2),
    ):
        quota_services.quota_set(actor=None, kind=kind, node_group=group, value=value, group=public)
    ContainerGroupPolicy.objects.create(node_group=group, idle_seconds=3600, grace_seconds=600, gpu_util_threshold=10)
    return group


def running_gpu(user, group) -> Container:
    c = services.container_create(actor=user, name="lab", node_group=group, cpu=2, memory_gib=8, gpus=1)
    c.refresh_from_db()
    services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.RUNNING)
    c.refresh_from_db()
    assert c.started_spec["gpus"] == 1
    return c


def read(c: Container, percent: float | None, at) -> None:
    services.container_record_gpu_utilisation(container_id=c.pk, run=c.run, percent=percent, at=at)


def test_busy_gpus_keep_a_quiet_jupyterlab_from_being_reclaimed_until_they_idle_for_the_time(gpu_group, user, task_log):
    c = running_gpu(user, gpu_group)
    t0 = c.last_activity_at  # JupyterLab's last activity: nothing after this
    read(c, 55.0, t0)
    read(c, 10.0, t0 + timedelta(seconds=1800))  # at the threshold: still busy
    read(c, 9.5, t0 + timedelta(seconds=1900))
    c.refresh_from_db()
    assert (c.gpu_utilisation, c.gpu_busy_at) == (9.5, t0 + timedelta(seconds=1800))
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=3600)) == {"warned": [], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=5399)) == {"warned": [], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=5400)) == {"warned": [c.pk], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=6000)) == {"warned": [], "stopped": [c.pk]}
    c.refresh_from_db()
    assert (c.status, c.stop_reason) == (ContainerStatus.STOPPING, StopReason.IDLE)


def test_an_idle_gpu_does_not_reclaim_an_active_jupyterlab(gpu_group, user, task_log):
    c = running_gpu(user, gpu_group)
    t0 = c.last_activity_at
    read(c, 0.0, t0)
    services.container_record_activity(container_id=c.pk, run=c.run, last_activity=t0 + timedelta(seconds=3000))
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=3600)) == {"warned": [], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=6600)) == {"warned": [c.pk], "stopped": []}


def test_unknown_or_never_read_utilisation_never_counts_as_idle(gpu_group, user, task_log):
    c = running_gpu(user, gpu_group)
    t0 = c.last_activity_at
    far = t0 + timedelta(days=3)
    assert services.containers_reclaim_idle(far) == {"warned": [], "stopped": []}  # not read yet in this run
    read(c, 0.0, t0)
    read(c, None, t0 + timedelta(seconds=3000))  # the backend could not measure: busy
    c.refresh_from_db()
    assert (c.gpu_utilisation, c.gpu_busy_at) == (None, t0 + timedelta(seconds=3000))
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=6599)) == {"warned": [], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=6600)) == {"warned": [c.pk], "stopped": []}


def test_busy_gpus_after_the_warning_clear_it(gpu_group, user, task_log):
    c = running_gpu(user, gpu_group)
    t0 = c.last_activity_at
    read(c, 1.0, t0)
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=3600)) == {"warned": [c.pk], "stopped": []}
    read(c, 90.0, t0 + timedelta(seconds=3700))
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=4200)) == {"warned": [], "stopped": []}
    c.refresh_from_db()
    assert (c.idle_warned_at, c.status) == (None, ContainerStatus.RUNNING)


def test_a_reading_of_another_run_or_a_stopped_container_is_ignored(gpu_group, user, task_log):
    c = running_gpu(user, gpu_group)
    read_other = c.last_activity_at
    services.container_record_gpu_utilisation(container_id=c.pk, run=c.run + 1, percent=0.0, at=read_other)
    c.refresh_from_db()
    assert (c.gpu_utilisation, c.gpu_busy_at) == (None, None)


def test_the_launcher_reads_the_backends_utilisation_with_jupyterlabs_activity(gpu_group, user, task_log, monkeypatch):
    c = running_gpu(user, gpu_group)
    spec = container_reconcile.build_spec(c)

    class Backend:
        asked: list[tuple[int, int]] = []

        def gpu_utilisation(self, container_id: int, run: int) -> float | None:
            self.asked.append((container_id, run))
            return 42.0

    monkeypatch.setattr(container_reconcile, "jupyter_last_activity", lambda address, spec, timeout=1.0: None)
    monkeypatch.setattr(container_reconcile, "_last_activity_check", {})
    backend = Backend()
    container_reconcile._check_activity(backend, c, spec, "127.0.0.1:9")  # type: ignore[arg-type]
    container_reconcile._check_activity(backend, c, spec, "127.0.0.1:9")  # type: ignore[arg-type]  # throttled
    assert backend.asked == [(c.pk, c.run)]
    c.refresh_from_db()
    assert c.gpu_utilisation == 42.0 and c.gpu_busy_at is not None


# -- the local backend: nvidia-smi ----------------------------------------------------------------------


def fake_nvidia_smi(tmp_path: Path, output: str, code: int = 0) -> str:
    script = tmp_path / "nvidia-smi"
    script.write_text(
        f"#!/bin/sh\n[ \"$1\" = --query-gpu=index,utilization.gpu ] || exit 9\nprintf '{output}'\nexit {code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize(
    ("output", "code", "visible", "expected"),
    [
        ("0, 12\\n1, 70\\n", 0, None, 70.0),  # no GPUs named: every GPU of the machine, the busiest
        ("0, 12\\n1, 70\\n", 0, "0", 12.0),  # the run's CUDA_VISIBLE_DEVICES
        ("0, 12\\n1, [N/A]\\n", 0, None, None),  # a GPU it cannot read: unknown
        ("0, 12\\n", 0, "3", None),  # a GPU it does not list: unknown
        ("", 0, None, None),
        ("0, 12\\n", 1, None, None),  # nvidia-smi failed
    ],
)
def test_the_local_backend_reads_nvidia_smi(tmp_path, monkeypatch, output, code, visible, expected):
    backend = LocalContainerBackend(
        tmp_path / "runs", LogStore(tmp_path / "logs"), nvidia_smi=fake_nvidia_smi(tmp_path, output, code)
    )
    env = {"CUDA_VISIBLE_DEVICES": visible} if visible else {}
    monkeypatch.setattr(backend.runs, "_meta", lambda key: {"spec": {"ranks": [{"rank": 0, "env": env}]}})
    assert backend.gpu_utilisation(5, 1) == expected


def test_without_nvidia_smi_the_local_backend_reports_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    backend = LocalContainerBackend(tmp_path / "runs", LogStore(tmp_path / "logs"))
    assert backend.gpu_utilisation(5, 1) is None
    assert os.environ["PATH"] == str(tmp_path)


# -- Kubernetes: Prometheus + DCGM exporter ------------------------------------------------------------


def prometheus(answer: httpx.Response | None, asked: list[str]) -> PrometheusGpuMetrics:
    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["query"])
        assert request.url.path == "/prom/api/v1/query"
        if answer is None:
            raise httpx.ConnectError("refused")
        return answer

    return PrometheusGpuMetrics("http://prom.example/prom/", client=httpx.Client(transport=httpx.MockTransport(handle)))


def vector(*values: str) -> httpx.Response:
    result = [{"metric": {}, "value": [1764700000.0, v]} for v in values]
    return httpx.Response(
        200, content=json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (vector("37.5"), 37.5),
        (vector(), None),  # no series: the exporter does not see the pod (yet)
        (vector("NaN"), None),
        (httpx.Response(503, text="down"), None),
        (httpx.Response(200, text="not json"), None),
        (None, None),  # Prometheus unreachable
    ],
)
def test_prometheus_gives_the_busiest_gpu_of_the_pod_or_unknown(answer, expected):
    asked: list[str] = []
    assert prometheus(answer, asked).utilisation(namespace="rota-jobs", pod="rota-c-5000002") == expected
    assert asked == ['max(DCGM_FI_DEV_GPU_UTIL{namespace="rota-jobs",pod="rota-c-5000002"})']


def test_the_kubernetes_backend_asks_for_its_runs_pod():
    from kubernetes import client

    from apps.launcher.backends.container_kubernetes import KubernetesContainerBackend

    asked: list[str] = []
    backend = KubernetesContainerBackend(
        client.ApiClient(), namespace="rota-jobs", gpu_metrics=prometheus(vector("3"), asked)
    )
    try:
        assert backend.gpu_utilisation(5, 2) == 3.0
        assert asked == ['max(DCGM_FI_DEV_GPU_UTIL{namespace="rota-jobs",pod="rota-c-5000002"})']
        assert KubernetesContainerBackend(client.ApiClient(), namespace="x").gpu_utilisation(5, 2) is None
    finally:
        backend.close()


def test_the_containers_page_shows_the_reading_or_that_it_is_unknown(gpu_group, user, task_log, client, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    c = running_gpu(user, gpu_group)
    client.force_login(user)
    page = client.get(f"/containers/{c.pk}/").content.decode()
    assert "GPU utilisation: unknown (it is not stopped as idle while its GPUs cannot be measured)." in page
    read(c, 42.4, c.last_activity_at)
    assert "GPU utilisation: 42 %" in client.get(f"/containers/{c.pk}/").content.decode()
    client.cookies["django_language"] = "zh-hans"
    assert "GPU 利用率：42 %" in client.get(f"/containers/{c.pk}/").content.decode()
