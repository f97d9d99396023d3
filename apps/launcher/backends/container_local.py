"""The local container backend: each service of a container is a supervised process group here.

It reuses the job backend's machinery (``LocalBackend`` and ``rank_supervisor``): every service is
one "rank" of the run — detached supervisor, own process group, output timestamped into the log
store (``{log root}/containers/<container id>/<run key>/rank-<service index>``), state files with
pid + start-time identity, adoption after a portal restart. So a container is a process tree in the
owner's workspace (``ROTA_CONTAINERS['WORKSPACE_ROOT']/<user>``), running as the server's user (or
as the owner's POSIX account when the server runs as root), like local jobs.

JupyterLab listens on 127.0.0.1 on a free port chosen at start (kept in the run's spec, so a
restarted portal finds it again), with ``base_url`` = the portal path and the run's secret token in
``JUPYTER_TOKEN`` (environment, not argv: the process list is readable by everyone). Only the
portal's proxy, which adds the token, talks to it. Custom HTTP services listen on their declared
port on 127.0.0.1. SSH: the run's own ``sshd`` (``sshd_command``) on the port the launcher gave the
run (``ROTA_CONTAINERS['SSH_PORT_MIN'..'SSH_PORT_MAX']``) and ``SSH_LISTEN``; without ``sshd`` on
the machine the ssh service fails with a message in its log and the rest of the container runs on.

Stopping (a stop, a whole-container restart, a failed start) and restarting one service are
graceful, as the Kubernetes backend's service wrapper does it: SIGTERM to each service's whole
process group, so JupyterLab shuts its kernels down and a user's service can save; the supervisor
waits for the rest of the group when the leader exits first (a ``bash -c`` service); what is left
at the end of ``stop_grace_seconds`` (``ROTA_CONTAINERS['STOP_GRACE_SECONDS']``) is SIGKILLed.
Neither ever waits: each call does the next step (``LocalBackend.stop_gracefully`` and
``restart_rank``), and the launcher's pass calls again until the services have ended. The grace
counts from a time kept in the run's files, so a portal restarted meanwhile kills on time too.

GPU utilisation (idle reclaim on GPU groups) is read with ``nvidia-smi`` when it is on PATH: the
GPUs of the run's ``CUDA_VISIBLE_DEVICES`` when its variables name them, else every GPU of the
machine (the local backend does not isolate GPUs, so the busiest one keeps the container: it can
only delay a reclaim, never cause one). No ``nvidia-smi``, or a reading it cannot give → unknown.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankSpec
from apps.launcher.backends.container_base import (
    ContainerBackend,
    ContainerSpec,
    ServiceObservation,
    run_key,
)
from apps.launcher.backends.local import LocalBackend
from apps.logs.store import LogStore

JUPYTER_PORT_ENV = "ROTA_JUPYTER_PORT"
COMMAND_ENV = "ROTA_SERVICE_COMMAND"
SERVICE_ENV = "ROTA_SERVICE"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jupyter_command(python: str, port: int, base_url: str, root: str) -> str:
    argv = [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root}",
        # The portal authenticates people and adds the token; the browser's Origin is the portal's.
        "--ServerApp.allow_remote_access=True",
        "--ServerApp.terminals_enabled=True",
        "--ServerApp.allow_root=True",  # harmless unless the server runs as root with no POSIX uid mapped
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    return "exec " + shlex.join(argv)


SSHD = "/usr/sbin/sshd"


def sshd_command(port: int | None, listen: str, run_dir: str) -> str:
    """The ssh service: the container's own sshd on ``listen:port`` (the port the launcher gave the
    run), with a host key of its own (made at first start, kept in the run's directory), public
    keys only, read from ``$HOME/.ssh/authorized_keys`` of the service (the workspace, or the home
    of the owner's POSIX account when the server runs as root and starts it as that account).
    ``-f /dev/null``: none of the machine's ``sshd_config`` applies (its port, its ``AllowUsers``,
    its PAM set-up). sshd must be started by its absolute path (it re-executes itself); as root it
    needs its privilege-separation directory ``/run/sshd``. Run as root it logs in any account of
    the machine whose key is in that file; run as another user it can log in only that user
    (docs/containers.md, "SSH")."""
    if not port:
        return "echo 'No SSH port was assigned to this run: SSH is unavailable' >&2; exit 1"
    key = f"{run_dir}/ssh_host_ed25519_key"
    options = [
        "-D",
        "-e",
        "-f",
        "/dev/null",
        "-p",
        str(port),
        "-h",
        key,
        "-o",
        f"ListenAddress={listen}",
        "-o",
        "PidFile=none",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "Subsystem=sftp internal-sftp",
    ]
    return (
        f'sshd="$(command -v sshd || echo {SSHD})"; '
        "[ -x \"$sshd\" ] || { echo 'sshd is not installed on this machine: SSH is unavailable' >&2; exit 127; }; "
        '[ "$(id -u)" != 0 ] || mkdir -p -m 0755 /run/sshd; '
        f"[ -f {shlex.quote(key)} ] || ssh-keygen -q -t ed25519 -N '' -f {shlex.quote(key)}; "
        f'exec "$sshd" {shlex.join(options)} -o "AuthorizedKeysFile=$HOME/.ssh/authorized_keys"'
    )


def port_bindable(address: str, port: int) -> bool:
    """Whether a TCP port can be bound on ``address`` right now (nothing of this machine listens on
    it). ``SO_REUSEADDR`` as sshd sets it: connections of an earlier sshd still in TIME_WAIT do not
    keep the port from its next one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


class LocalContainerBackend(ContainerBackend):
    name = "local"

    def __init__(
        self,
        run_root: Path,
        log_store: LogStore,
        *,
        python: str = sys.executable,
        nvidia_smi: str = "nvidia-smi",
        ssh_listen: str = "127.0.0.1",
        stop_grace_seconds: float = 10.0,
    ) -> None:
        if stop_grace_seconds < 0:
            raise ValueError("stop_grace_seconds must be >= 0")
        self.runs = LocalBackend(Path(run_root), log_store, python=python)
        self.stop_grace_seconds = float(stop_grace_seconds)
        self.python = python
        self.nvidia_smi = nvidia_smi
        self.ssh_listen = ssh_listen

    def ssh_port_usable(self, port: int) -> bool:
        """Whether a run's sshd could listen on ``port`` now (the launcher skips ports others hold)."""
        return port_bindable(self.ssh_listen, port)

    def _launch_spec(self, spec: ContainerSpec, port: int) -> LaunchSpec:
        workspace = Path(spec.workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        run_dir = str(self.runs.run_dir(spec.key).resolve())
        base_env = {
            "HOME": spec.workspace,
            "USER": spec.owner,
            "ROTA_CONTAINER": spec.name,
            "ROTA_CONTAINER_ID": str(spec.container_id),
            "JUPYTER_RUNTIME_DIR": f"{run_dir}/jupyter-runtime",
            "SHELL": "/bin/bash",
            **spec.env,
        }
        ranks = []
        for service in spec.services:
            env = {**base_env, SERVICE_ENV: service.name}
            if service.name == "jupyter":
                env[JUPYTER_PORT_ENV] = str(port)
                env["JUPYTER_TOKEN"] = spec.token
                command = jupyter_command(self.python, port, spec.base_url, spec.workspace)
            elif service.name == "startup":
                command = spec.startup_script
            elif service.name == "ssh":
                command = sshd_command(spec.node_ports.get("ssh"), self.ssh_listen, run_dir)
            else:
                env["PORT"] = str(service.port)
                command = service.command
            env[COMMAND_ENV] = command
            ranks.append(RankSpec(rank=service.rank, node=spec.node, env=env))
        return LaunchSpec(
            attempt_id=spec.key,
            chain_id=str(spec.container_id),
            user=spec.owner,
            uid=spec.uid,
            gid=spec.gid,
            uid_mapped=spec.uid_mapped,
            workspace=spec.workspace,
            kind=EntrypointKind.EXECUTABLE,
            entrypoint="bash",
            parameters=("-c", f'eval "${COMMAND_ENV}"'),
            interpreter=self.python,
            image=spec.image,
            ranks=tuple(ranks),
        )

    def _port(self, key: int) -> int | None:
        meta = self.runs._meta(key)
        if not meta or not isinstance(meta.get("spec"), dict):
            return None
        for rank in meta["spec"].get("ranks", ()):
            value = (rank.get("env") or {}).get(JUPYTER_PORT_ENV)
            if value:
                return int(value)
        return None

    def start(self, spec: ContainerSpec) -> None:
        port = self._port(spec.key) or free_port()
        self.runs.start(self._launch_spec(spec, port))

    def _names(self, key: int) -> dict[int, str]:
        meta = self.runs._meta(key)
        if not meta or not isinstance(meta.get("spec"), dict):
            return {}
        return {int(r["rank"]): str((r.get("env") or {}).get(SERVICE_ENV, r["rank"])) for r in meta["spec"]["ranks"]}

    def observe(self, container_id: int, run: int) -> dict[str, ServiceObservation]:
        key = run_key(container_id, run)
        names = self._names(key)
        return {
            names.get(rank, str(rank)): ServiceObservation(
                name=names.get(rank, str(rank)), phase=obs.phase, message=obs.message, exit_code=obs.exit_code
            )
            for rank, obs in self.runs.observe(key).items()
        }

    def endpoints(self, container_id: int, run: int) -> dict[str, str]:
        key = run_key(container_id, run)
        port = self._port(key)
        found: dict[str, str] = {}
        if port:
            found["jupyter"] = f"127.0.0.1:{port}"
        meta = self.runs._meta(key) or {}
        for rank in (meta.get("spec") or {}).get("ranks", ()):
            env = rank.get("env") or {}
            if env.get("PORT") and env.get(SERVICE_ENV):
                found[str(env[SERVICE_ENV])] = f"127.0.0.1:{env['PORT']}"
        return found

    def restart_service(self, spec: ContainerSpec, service: str) -> bool:
        """One step of restarting a service, the rest of the run going on (module docstring):
        SIGTERM its group, SIGKILL what is left after the grace, and once it has ended start it
        again (same log). Returns True when done (or when there is nothing to restart)."""
        rank = next((s.rank for s in spec.services if s.name == service), None)
        if rank is None or not self.runs.run_dir(spec.key).is_dir():
            return True
        if not self.runs.restart_rank(spec.key, rank, grace_seconds=self.stop_grace_seconds):
            return False
        self.start(spec)
        return True

    def gpu_utilisation(self, container_id: int, run: int) -> float | None:
        """``nvidia-smi``'s utilisation of the run's GPUs (module docstring), None when unknown."""
        exe = shutil.which(self.nvidia_smi)
        if exe is None:
            return None
        try:
            out = subprocess.run(
                [exe, "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        readings: dict[str, float | None] = {}
        for line in out.splitlines():
            index, _, value = (part.strip() for part in line.partition(","))
            if not index:
                continue
            try:
                readings[index] = float(value)
            except ValueError:  # "[N/A]", "[Not Supported]"
                readings[index] = None
        meta = self.runs._meta(run_key(container_id, run)) or {}
        ranks = (meta.get("spec") or {}).get("ranks") or [{}]
        visible = str((ranks[0].get("env") or {}).get("CUDA_VISIBLE_DEVICES") or "")
        wanted = [i.strip() for i in visible.split(",") if i.strip()] or list(readings)
        values = [readings.get(i) for i in wanted]
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if v is not None)

    def stop(self, container_id: int, run: int) -> None:
        """One step of a graceful stop (module docstring); call again until the services have ended."""
        self.runs.stop_gracefully(run_key(container_id, run), grace_seconds=self.stop_grace_seconds)

    def release(self, container_id: int, run: int) -> None:
        self.runs.release(run_key(container_id, run))

    def known_runs(self) -> set[tuple[int, int]]:
        return {divmod(key, 1_000_000) for key in self.runs.known_attempts()}  # type: ignore[misc]

    def alive(self, container_id: int, run: int) -> bool:
        """Whether anything of the run still lives (a release would refuse)."""
        key = run_key(container_id, run)
        run_dir = self.runs.run_dir(key)
        return any(self.runs._rank_alive(run_dir, rank) for rank in self.runs._ranks(run_dir))


__all__ = ["LocalContainerBackend", "free_port", "jupyter_command", "port_bindable", "sshd_command"]
