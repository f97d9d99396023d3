"""SSH into a development container on the local backend: its own sshd on a port of its own.

The live story starts real containers (JupyterLab and the run's ``sshd``) and logs in with the
real ``ssh`` client: the owner's key is let in and runs a command, another key is refused, two
containers get different ports, a container the range has no port left for fails with a clear
message, and a stopped container's port is closed, freed and given again at the next start.
The other tests check the allocation (race-safe retry, ports held by others skipped) and the
sshd command line without a live platform.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError

from apps.containers import services
from apps.containers.choices import ContainerStatus
from apps.containers.models import Container
from apps.containers.presentation import ssh_command, ssh_login
from apps.launcher.backends.container_local import port_bindable, sshd_command
from tests.conftest import wait_until

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
needs_sshd = pytest.mark.skipif(
    not Path(SSHD).is_file() or shutil.which("ssh") is None,
    reason="sshd and ssh are installed by scripts/test (openssh-server)",
)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def two_free_ports() -> int:
    """The lower of two consecutive ports nothing on this machine holds (the test's SSH range)."""
    for low in range(22_100, 22_900, 2):
        if port_bindable("127.0.0.1", low) and port_bindable("127.0.0.1", low + 1):
            return low
    raise AssertionError("no two free consecutive ports in 22100..22900")


def keypair(directory: Path, name: str) -> Path:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    return key


def ssh(key: Path, port: int, login: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "IdentitiesOnly=yes",
            f"{login}@127.0.0.1",
            "echo",
            "rota-ok",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def settled(pk: int) -> Container:
    wait_until(
        lambda: Container.objects.get(pk=pk).status in (ContainerStatus.RUNNING, ContainerStatus.FAILED),
        timeout=90,
        message="the container to run or fail",
    )
    return Container.objects.get(pk=pk)


@pytest.fixture
def workspaces(settings):
    """The owners' workspaces (their ``$HOME``) outside /tmp: sshd's StrictModes refuses an
    ``authorized_keys`` under a world-writable directory, as it would on a real machine."""
    var = Path(django_settings.BASE_DIR) / "var"
    var.mkdir(exist_ok=True)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    # A clone under /tmp has a world-writable ancestor; sshd stops its walk up at the login's home.
    base = next((p for p in (var, home) if strict_modes_accept(p, home)), None)
    assert base is not None, f"neither {var} nor {home} has only owner-writable ancestors (sshd StrictModes)"
    root = Path(tempfile.mkdtemp(prefix="ssh-test-", dir=base))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def strict_modes_accept(path: Path, home: Path) -> bool:
    """Whether sshd's StrictModes would accept a file below ``path``: ``path`` and each directory
    above it, up to the login's home or ``/``, is owned by root or us and writable by nobody else."""
    for d in (path, *path.parents):
        try:
            st = d.stat()
        except OSError:
            return False
        if st.st_uid not in (0, os.getuid()) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        if d == home:
            return True
    return True


@needs_sshd
def test_owner_logs_in_with_their_key_on_a_port_of_the_container(
    live_containers, jupyter, user, settings, tmp_path, workspaces
):
    low = two_free_ports()
    settings.ROTA_CONTAINERS = {
        **settings.ROTA_CONTAINERS,
        "WORKSPACE_ROOT": workspaces,
        "SSH_PORT_MIN": low,
        "SSH_PORT_MAX": low + 1,
    }
    jupyter.set("jupyter_ports", 5)
    home = workspaces / user.username
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    good, wrong = keypair(tmp_path, "good"), keypair(tmp_path, "wrong")
    authorized = home / ".ssh" / "authorized_keys"
    authorized.write_text(Path(f"{good}.pub").read_text())
    authorized.chmod(0o600)

    a = services.container_create(actor=user, name="a", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True)
    a = settled(a.pk)
    assert a.status == ContainerStatus.RUNNING, a.status_message
    assert a.ssh_node_port == low
    login = ssh_login(a)
    assert ssh_command(a) == f"ssh -p {low} {login}@127.0.0.1"
    wait_until(lambda: listening(low), timeout=30, message="the container's sshd to listen")

    ok = ssh(good, low, login)
    assert (ok.returncode, ok.stdout) == (0, "rota-ok\n"), ok.stderr
    refused = ssh(wrong, low, login)
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr, refused.stderr

    # A second container: the other port of the range, its own sshd.
    b = services.container_create(actor=user, name="b", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True)
    b = settled(b.pk)
    assert b.status == ContainerStatus.RUNNING, b.status_message
    assert b.ssh_node_port == low + 1
    wait_until(lambda: listening(low + 1), timeout=30, message="the second sshd to listen")
    assert ssh(good, low + 1, login).stdout == "rota-ok\n"

    # No port left: the third container fails with the reason and holds no port.
    c = services.container_create(actor=user, name="c", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True)
    c = settled(c.pk)
    assert c.status == ContainerStatus.FAILED
    assert c.status_message == services.SSH_PORTS_EXHAUSTED
    assert c.ssh_node_port is None and ssh_command(c) is None

    # Stopping frees the port: sshd is gone with the run, and the next start gets the port again.
    services.container_stop(actor=user, container=a)
    wait_until(
        lambda: Container.objects.get(pk=a.pk).status == ContainerStatus.STOPPED, timeout=60, message="a to stop"
    )
    a.refresh_from_db()
    assert a.ssh_node_port is None and ssh_command(a) is None
    assert not listening(low)
    assert ssh(good, low, login).returncode == 255

    services.container_start(actor=user, container=a)
    a = settled(a.pk)
    assert a.status == ContainerStatus.RUNNING, a.status_message
    assert a.ssh_node_port == low
    wait_until(lambda: listening(low), timeout=30, message="the restarted sshd to listen")
    again = ssh(good, low, login)
    assert (again.returncode, again.stdout) == (0, "rota-ok\n"), again.stderr


def test_assignment_skips_ports_in_use_and_retries_a_port_taken_meanwhile(jupyter, user, other_user, settings):
    """Two launchers choosing the same port: the unique column refuses the second save and the
    allocation reads the free ports again. Ports the machine holds (``usable``) are skipped."""
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "SSH_PORT_MIN": 40_000, "SSH_PORT_MAX": 40_003}
    jupyter.set("jupyter_ports", 5)
    mine = services.container_create(actor=user, name="mine", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True)
    rival = services.container_create(
        actor=other_user, name="rival", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True
    )
    asked: list[int] = []

    def usable(port: int) -> bool:
        asked.append(port)
        if port == 40_001 and not Container.objects.filter(ssh_node_port=40_001).exists():
            # Another launcher takes 40001 after this one read the used ports.
            Container.objects.filter(pk=rival.pk).update(ssh_node_port=40_001)
        return port != 40_000  # something else on the machine holds 40000

    services.container_assign_ssh_port(container_id=mine.pk, usable=usable)
    mine.refresh_from_db()
    assert mine.ssh_node_port == 40_002
    assert asked == [40_000, 40_001, 40_000, 40_002]  # the second reading skips the rival's port
    # Assigned already: nothing changes.
    services.container_assign_ssh_port(container_id=mine.pk, usable=usable)
    mine.refresh_from_db()
    assert mine.ssh_node_port == 40_002


def test_assignment_fails_clearly_when_the_range_is_used_up(jupyter, user, settings):
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "SSH_PORT_MIN": 40_010, "SSH_PORT_MAX": 40_010}
    c = services.container_create(actor=user, name="c", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True)
    from apps.core.errors import ApplicationError

    with pytest.raises(ApplicationError) as failed:
        services.container_assign_ssh_port(container_id=c.pk, usable=lambda port: False)
    assert failed.value.code == "ssh_ports_exhausted"
    c.refresh_from_db()
    assert c.ssh_node_port is None


def test_a_port_taken_every_time_gives_up_after_five_readings(jupyter, user, other_user, settings):
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "SSH_PORT_MIN": 40_020, "SSH_PORT_MAX": 40_030}
    jupyter.set("jupyter_ports", 5)
    c = services.container_create(actor=user, name="c", node_group=jupyter.group, cpu=1, memory_gib=1, ssh=True)
    rival = services.container_create(actor=other_user, name="r", node_group=jupyter.group, cpu=1, memory_gib=1)

    def always_taken(port: int) -> bool:
        Container.objects.filter(pk=rival.pk).update(ssh_node_port=port)
        return True

    with pytest.raises(IntegrityError):
        services.container_assign_ssh_port(container_id=c.pk, usable=always_taken)


def test_sshd_command_line():
    command = sshd_command(22_001, "0.0.0.0", "/runs/7")
    assert command.startswith('sshd="$(command -v sshd || echo /usr/sbin/sshd)"; ')
    assert "mkdir -p -m 0755 /run/sshd" in command
    assert (
        'exec "$sshd" -D -e -f /dev/null -p 22001 -h /runs/7/ssh_host_ed25519_key -o ListenAddress=0.0.0.0'
        " -o PidFile=none -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no"
        " -o 'Subsystem=sftp internal-sftp' -o \"AuthorizedKeysFile=$HOME/.ssh/authorized_keys\""
    ) in command
    # No port assigned (a run started before the launcher gave one): the service says so and ends.
    assert sshd_command(None, "127.0.0.1", "/runs/7") == (
        "echo 'No SSH port was assigned to this run: SSH is unavailable' >&2; exit 1"
    )


def test_port_bindable():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert not port_bindable("127.0.0.1", held.getsockname()[1])
    assert port_bindable("127.0.0.1", 0)
