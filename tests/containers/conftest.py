"""Fixtures of the container tests: a shared CPU group with quota for everyone."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.cluster import services as cluster_services
from apps.quotas import services as quota_services
from tests.client.conftest import base_env, config_home  # noqa: F401  (the CLI tests' fixtures)

GIB = 2**30


class Jupyter:
    """Node group ``jupyter_cpu`` (two nodes: 8 CPUs, 32 GiB each) and public container quota."""

    def __init__(self, containers: int = 3, cpu: int = 12, memory_gib: int = 48, ports: int = 2) -> None:
        self.group = cluster_services.node_group_upsert(actor=None, name="jupyter_cpu")
        self.nodes = [
            cluster_services.node_upsert(
                actor=None, name=f"j{i}", group=self.group, gpu_count=0, cpu=8, memory_bytes=32 * GIB
            )
            for i in range(2)
        ]
        self.public = Group.objects.get_or_create(name="public")[0]
        for kind, value in (
            ("jupyter_containers", containers),
            ("jupyter_cpu", cpu),
            ("jupyter_memory_gib", memory_gib),
            ("jupyter_ports", ports),
        ):
            self.set(kind, value)

    def set(self, kind: str, value: int, **subject) -> None:
        subject = subject or {"group": self.public}
        quota_services.quota_set(actor=None, kind=kind, node_group=self.group, value=value, **subject)


@pytest.fixture
def jupyter(transactional_db) -> Jupyter:
    """Transactional: scheduling and launcher passes run after real commits."""
    return Jupyter()


@pytest.fixture
def live_containers(platform, settings, tmp_path):
    """The live platform plus the launcher's container pass in a loop; every run is stopped and
    forgotten at the end (no JupyterLab outlives its test)."""
    import threading

    from django.db import close_old_connections

    from apps.core.tasks import run_now
    from apps.launcher.backends import get_container_backend
    from tests.conftest import wait_until

    settings.ROTA_CONTAINERS = {
        **settings.ROTA_CONTAINERS,
        "RUN_ROOT": tmp_path / "containers",
        "WORKSPACE_ROOT": tmp_path / "workspaces",
        "START_TIMEOUT_SECONDS": 60.0,
        "STOP_GRACE_SECONDS": 2,  # short, so a service that ignores SIGTERM is killed soon
    }
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                run_now("apps.launcher.tasks.container_reconcile_pass")
            except Exception:
                import logging

                logging.getLogger("tests").exception("container pass failed")
            close_old_connections()
            stop.wait(0.1)
        close_old_connections()

    thread = threading.Thread(target=loop, name="test-container-loop", daemon=True)
    thread.start()
    try:
        yield platform
    finally:
        stop.set()
        thread.join(30)
        backend = get_container_backend()
        for container_id, run in backend.known_runs():
            backend.stop(container_id, run)
        for container_id, run in backend.known_runs():

            def ended(c: int = container_id, r: int = run) -> bool:
                backend.stop(c, r)  # a stop is a step per call: SIGKILL once the grace has passed
                return not backend.alive(c, r)

            wait_until(ended, timeout=float(settings.ROTA_CONTAINERS["STOP_GRACE_SECONDS"]) + 20, message="run to end")
            backend.release(container_id, run)


@pytest.fixture(autouse=True)
def _english():
    """Service messages are in the active language; these tests read the English ones."""
    from django.utils import translation

    with translation.override("en"):
        yield
