"""Stopping and restarting a container on the local backend is graceful: SIGTERM, the grace, SIGKILL.

Two services stand for what a stop must handle: a *saver* (a ``bash -c`` service whose Python
saves something when told to terminate: bash dies of the SIGTERM at once, its Python is still
writing) and a *stubborn* one that ignores SIGTERM. The saver gets to write its file; the stubborn
one is SIGKILLed once the grace has passed, never before; the stop never waits for the grace in the
caller (each call is one step, as the launcher's pass makes them); a portal restarted while a
container is stopping goes on from the time kept in the run's files and leaves no process behind.
The backend is driven directly, then the whole story runs through the launcher's pass with a real
JupyterLab: restart one service, stop with a "server restart" in the middle, STOPPED and the node
freed.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest

from apps.containers import services
from apps.containers.choices import ContainerStatus
from apps.containers.models import Container
from apps.launcher.backends.base import RankPhase
from apps.launcher.backends.container_base import ContainerSpec, ServiceSpec
from apps.launcher.backends.container_local import LocalContainerBackend
from apps.launcher.rank_supervisor import ProcessIdentity
from apps.logs.store import LogStore
from tests.conftest import wait_until

SAVER = """
import os, signal, sys, time

out, ready = sys.argv[1], sys.argv[2]

def on_term(signum, frame):
    time.sleep(0.5)  # the save takes a while: bash, the group's leader, is long gone by now
    with open(out + ".tmp", "w") as f:
        f.write(f"saved by {os.getpid()}\\n")
    os.replace(out + ".tmp", out)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(ready + ".tmp", ready)
while True:
    signal.pause()
"""

STUBBORN = """
import os, signal, sys

ready = sys.argv[1]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(ready + ".tmp", ready)
while True:
    signal.pause()
"""

GRACE = 2.0


class Scripts:
    """The two services' programs and the files they write, in a directory of the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "saver.py").write_text(SAVER)
        (root / "stubborn.py").write_text(STUBBORN)
        self.saved = root / "saved"
        self.saver_ready = root / "saver.pid"
        self.stubborn_ready = root / "stubborn.pid"

    def saver_command(self) -> str:
        # Not the shell's last command, so bash stays the group's leader and dies of the SIGTERM first.
        py, script = sys.executable, self.root / "saver.py"
        return f"{py} {script} {self.saved} {self.saver_ready}; echo 'saver ended'"

    def stubborn_command(self) -> str:
        return f"trap '' TERM; {sys.executable} {self.root / 'stubborn.py'} {self.stubborn_ready}; echo 'never here'"

    @staticmethod
    def pid(path: Path) -> int:
        """The pid a service wrote once its signal handling was set up (waits for the file)."""
        return int(wait_until(lambda: path.is_file() and path.read_text(), timeout=30, message=f"{path.name}"))


@pytest.fixture
def scripts(tmp_path) -> Scripts:
    root = tmp_path / "scripts"
    root.mkdir()
    return Scripts(root)


def make_backend(tmp_path: Path, grace: float = GRACE) -> LocalContainerBackend:
    return LocalContainerBackend(tmp_path / "runs", LogStore(tmp_path / "logs"), stop_grace_seconds=grace)


@pytest.fixture
def backend(tmp_path):
    """A backend of the test's own. Whatever still runs under its run root at the end (also runs of
    other backends the test made there) is killed at once and forgotten."""
    yield make_backend(tmp_path)
    leftovers = make_backend(tmp_path, grace=0)
    for container_id, run in leftovers.known_runs():
        leftovers.stop(container_id, run)
        wait_until(lambda c=container_id, r=run: not leftovers.alive(c, r), timeout=20, message="the run to end")
        leftovers.release(container_id, run)


def make_spec(tmp_path: Path, scripts: Scripts, run: int = 1) -> ContainerSpec:
    workspace = tmp_path / "workspace"
    return ContainerSpec(
        container_id=7,
        run=run,
        owner="alice",
        name="lab",
        node="j0",
        base_url="/containers/alice/lab/",
        token="t" * 32,
        workspace=str(workspace),
        image="",
        cpu=1,
        memory_bytes=2**30,
        gpus=0,
        services=(
            ServiceSpec(rank=0, name="saver", protocol="http", port=9001, command=scripts.saver_command()),
            ServiceSpec(rank=1, name="stubborn", protocol="http", port=9002, command=scripts.stubborn_command()),
        ),
    )


def started(backend: LocalContainerBackend, spec: ContainerSpec, scripts: Scripts) -> tuple[int, int]:
    backend.start(spec)
    wait_until(
        lambda: {o.phase for o in backend.observe(spec.container_id, spec.run).values()} == {RankPhase.RUNNING},
        timeout=30,
        message="both services to run",
    )
    return Scripts.pid(scripts.saver_ready), Scripts.pid(scripts.stubborn_ready)


def stop_until_ended(backend: LocalContainerBackend, spec: ContainerSpec, timeout: float = GRACE + 20) -> float:
    """Call ``stop`` as the launcher's passes do until nothing of the run lives; the wall time then."""

    def ended() -> bool:
        backend.stop(spec.container_id, spec.run)
        return not backend.alive(spec.container_id, spec.run)

    wait_until(ended, timeout=timeout, message="the run to end")
    return time.time()


def test_stop_lets_a_service_save_and_kills_one_that_ignores_term_once_the_grace_has_passed(backend, scripts, tmp_path):
    spec = make_spec(tmp_path, scripts)
    saver, stubborn = started(backend, spec, scripts)
    stubborn_identity = ProcessIdentity.of(stubborn)
    assert not scripts.saved.exists()

    asked = time.time()
    backend.stop(spec.container_id, spec.run)
    # The call returned without waiting for the grace: the stubborn service still runs.
    assert stubborn_identity.is_alive()
    ended = stop_until_ended(backend, spec)

    assert scripts.saved.read_text() == f"saved by {saver}\n"
    assert not stubborn_identity.is_alive()
    assert ended - asked >= GRACE  # killed at the end of the grace, not before
    observed = backend.observe(spec.container_id, spec.run)
    assert {name: (o.phase, o.message) for name, o in observed.items()} == {
        "saver": (RankPhase.KILLED, "killed by SIGTERM (stop)"),  # its leader, bash, died of the SIGTERM
        "stubborn": (RankPhase.KILLED, "killed by SIGKILL (stop)"),
    }
    backend.release(spec.container_id, spec.run)
    assert backend.known_runs() == set()


def test_a_stop_that_ends_before_the_grace_is_not_held_by_it(backend, tmp_path, scripts):
    """Services that end on the SIGTERM: the stop is over as soon as they are, not at the grace."""
    backend = make_backend(tmp_path, grace=600)
    spec = make_spec(tmp_path, scripts)
    spec = dataclasses.replace(spec, services=spec.services[:1])
    backend.start(spec)
    saver = Scripts.pid(scripts.saver_ready)
    stop_until_ended(backend, spec, timeout=30)
    assert scripts.saved.read_text() == f"saved by {saver}\n"
    saver_state = backend.observe(spec.container_id, spec.run)["saver"]
    assert (saver_state.phase, saver_state.message) == (RankPhase.KILLED, "killed by SIGTERM (stop)")  # no SIGKILL
    backend.release(spec.container_id, spec.run)


def test_a_portal_restarted_while_a_container_stops_kills_on_time_and_leaves_no_process(backend, scripts, tmp_path):
    spec = make_spec(tmp_path, scripts)
    saver, stubborn = started(backend, spec, scripts)
    identities = [ProcessIdentity.of(saver), ProcessIdentity.of(stubborn)]
    asked = time.time()
    backend.stop(spec.container_id, spec.run)

    # The portal restarts: a new backend over the same run directory knows the stop and its time.
    restarted = make_backend(tmp_path)
    assert restarted.known_runs() == {(spec.container_id, spec.run)}
    ended = stop_until_ended(restarted, spec)

    assert ended - asked >= GRACE
    assert scripts.saved.read_text() == f"saved by {saver}\n"
    assert [i.is_alive() for i in identities] == [False, False]
    restarted.release(spec.container_id, spec.run)
    assert restarted.known_runs() == set()


def test_a_stop_with_no_grace_kills_at_once(backend, tmp_path, scripts):
    backend = make_backend(tmp_path, grace=0)
    spec = make_spec(tmp_path, scripts)
    identities = [ProcessIdentity.of(pid) for pid in started(backend, spec, scripts)]
    stop_until_ended(backend, spec, timeout=20)
    assert [i.is_alive() for i in identities] == [False, False]
    assert not scripts.saved.exists()
    observed = backend.observe(spec.container_id, spec.run)
    assert {o.message for o in observed.values()} == {"killed by SIGKILL (stop)"}
    backend.release(spec.container_id, spec.run)


def test_the_portals_local_backend_takes_the_stop_grace_setting(settings, tmp_path):
    from apps.launcher import backends

    settings.ROTA_BACKEND = "local"
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "RUN_ROOT": tmp_path / "runs", "STOP_GRACE_SECONDS": 7}
    backends.reset_backend()
    try:
        backend = backends.get_container_backend()
        assert isinstance(backend, LocalContainerBackend)
        assert backend.stop_grace_seconds == 7.0
    finally:
        backends.reset_backend()


def test_negative_grace_is_refused(tmp_path):
    with pytest.raises(ValueError, match="stop_grace_seconds must be >= 0"):
        make_backend(tmp_path, grace=-1)


def restart_until_done(backend: LocalContainerBackend, spec: ContainerSpec, service: str) -> float:
    """Call ``restart_service`` as the passes do until it is done; the wall time then."""
    wait_until(lambda: backend.restart_service(spec, service), timeout=GRACE + 20, message=f"{service} to restart")
    return time.time()


def test_restarting_one_service_lets_it_save_and_the_other_runs_on(backend, scripts, tmp_path):
    spec = make_spec(tmp_path, scripts)
    saver, stubborn = started(backend, spec, scripts)
    stubborn_identity = ProcessIdentity.of(stubborn)
    scripts.saver_ready.unlink()

    assert backend.restart_service(spec, "saver") is False  # SIGTERM sent; the save is under way
    restart_until_done(backend, spec, "saver")
    assert scripts.saved.read_text() == f"saved by {saver}\n"
    again = Scripts.pid(scripts.saver_ready)
    assert again != saver
    wait_until(
        lambda: backend.observe(spec.container_id, spec.run)["saver"].phase == RankPhase.RUNNING,
        timeout=30,
        message="the saver to run again",
    )
    assert stubborn_identity.is_alive()  # the rest of the run went on
    assert backend.restart_service(spec, "no-such-service") is True  # nothing to do


def test_restarting_a_service_that_ignores_term_kills_it_after_the_grace_then_starts_it(backend, scripts, tmp_path):
    spec = make_spec(tmp_path, scripts)
    saver, stubborn = started(backend, spec, scripts)
    stubborn_identity, saver_identity = ProcessIdentity.of(stubborn), ProcessIdentity.of(saver)
    scripts.stubborn_ready.unlink()

    asked = time.time()
    assert backend.restart_service(spec, "stubborn") is False
    assert stubborn_identity.is_alive()  # no wait for the grace in the call
    done = restart_until_done(backend, spec, "stubborn")

    assert done - asked >= GRACE
    assert not stubborn_identity.is_alive()
    assert Scripts.pid(scripts.stubborn_ready) != stubborn
    assert saver_identity.is_alive() and not scripts.saved.exists()


# -- through the launcher's pass, with a real JupyterLab ------------------------------------------


def test_container_restart_of_a_service_and_stop_are_graceful_through_the_launcher(
    live_containers, jupyter, user, settings, scripts
):
    grace = float(settings.ROTA_CONTAINERS["STOP_GRACE_SECONDS"])
    c = services.container_create(
        actor=user,
        name="lab",
        node_group=jupyter.group,
        cpu=1,
        memory_gib=1,
        services=[
            {"name": "saver", "port": 9001, "protocol": "http", "command": scripts.saver_command()},
            {"name": "stubborn", "port": 9002, "protocol": "http", "command": scripts.stubborn_command()},
        ],
    )
    wait_until(
        lambda: Container.objects.get(pk=c.pk).status in (ContainerStatus.RUNNING, ContainerStatus.FAILED),
        timeout=90,
        message="JupyterLab to answer",
    )
    c.refresh_from_db()
    assert c.status == ContainerStatus.RUNNING, c.status_message
    saver, stubborn = Scripts.pid(scripts.saver_ready), Scripts.pid(scripts.stubborn_ready)
    stubborn_identity = ProcessIdentity.of(stubborn)

    # Restart the saver: it saves, comes back, and the container stays running meanwhile.
    scripts.saver_ready.unlink()
    services.container_restart_service(actor=user, container=c, service="saver")
    wait_until(lambda: Container.objects.get(pk=c.pk).restart_services == [], timeout=30, message="the restart")
    assert scripts.saved.read_text() == f"saved by {saver}\n"
    saver = Scripts.pid(scripts.saver_ready)
    assert Container.objects.get(pk=c.pk).status == ContainerStatus.RUNNING
    scripts.saved.unlink()

    # Stop, and restart the portal's backend while the container is stopping.
    from apps.launcher.backends import get_container_backend, reset_backend

    asked = time.time()
    services.container_stop(actor=user, container=c)
    wait_until(scripts.saved.is_file, timeout=30, message="the saver to save on the SIGTERM")
    assert Container.objects.get(pk=c.pk).status == ContainerStatus.STOPPING
    reset_backend()
    wait_until(
        lambda: Container.objects.get(pk=c.pk).status == ContainerStatus.STOPPED,
        timeout=grace + 30,
        message="the container to stop",
    )
    stopped = time.time()

    c.refresh_from_db()
    assert c.node is None and c.stop_reason == "user"
    assert scripts.saved.read_text() == f"saved by {saver}\n"
    assert not stubborn_identity.is_alive()
    assert stopped - asked >= grace  # the stubborn service had its grace, then was killed
    assert get_container_backend().known_runs() == set()
