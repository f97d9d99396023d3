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
port on 127.0.0.1. SSH needs ``sshd`` on PATH; without it the ssh service fails with a message in
its log and the rest of the container runs on.

GPU utilisation (idle reclaim on GPU groups) is read with ``nvidia-smi`` when it is on PATH: the
GPUs of the run's ``CUDA_VISIBLE_DEVICES`` when its variables name them, else every GPU of the
machine (the local backend does not isolate GPUs, so the busiest one keeps the container: it can
only delay a reclaim, never cause one). No ``nvidia-smi``, or a reading it cannot give → unknown.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankPhase, RankSpec
from apps.launcher.backends.container_base import (
    ContainerBackend,
    ContainerSpec,
    ServiceObservation,
    run_key,
)
from apps.launcher.backends.local import LocalBackend
from apps.launcher.rank_supervisor import claim_file, read_state, signal_child_group, sigterm_sent_file, state_file
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


def sshd_command(port: int, run_dir: str) -> str:
    key = f"{run_dir}/ssh_host_ed25519_key"
    return (
        "command -v sshd >/dev/null || { echo 'sshd is not installed on this machine: SSH is unavailable'"
        " >&2; exit 127; }; "
        f"[ -f {shlex.quote(key)} ] || ssh-keygen -q -t ed25519 -N '' -f {shlex.quote(key)}; "
        f'exec "$(command -v sshd)" -D -e -p {port} -h {shlex.quote(key)} -o PidFile=none'
        " -o AuthorizedKeysFile=$HOME/.ssh/authorized_keys -o PasswordAuthentication=no"
    )


class LocalContainerBackend(ContainerBackend):
    name = "local"

    def __init__(
        self, run_root: Path, log_store: LogStore, *, python: str = sys.executable, nvidia_smi: str = "nvidia-smi"
    ) -> None:
        self.runs = LocalBackend(Path(run_root), log_store, python=python)
        self.python = python
        self.nvidia_smi = nvidia_smi

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
                command = sshd_command(service.port, run_dir)
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

    def restart_service(self, spec: ContainerSpec, service: str) -> None:
        """SIGKILL the service's group (no stop marker: the rest of the run goes on), wait for its
        supervisor to record the end, forget the rank's files, and start it again."""
        key = spec.key
        run_dir = self.runs.run_dir(key)
        rank = next((s.rank for s in spec.services if s.name == service), None)
        if rank is None or not run_dir.is_dir():
            return
        state = read_state(run_dir, rank)
        if state is not None and not RankPhase(state.phase).is_final:
            signal_child_group(run_dir, state, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            state = read_state(run_dir, rank)
            supervisor = state.supervisor() if state is not None else None
            if state is not None and RankPhase(state.phase).is_final and not (supervisor and supervisor.is_alive()):
                break
            time.sleep(0.05)  # waiting for another process to record an exit it reports only in a file
        else:
            return  # the next pass tries again
        for path in (state_file(run_dir, rank), claim_file(run_dir, rank), sigterm_sent_file(run_dir, rank)):
            path.unlink(missing_ok=True)
        self.start(spec)

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
        self.runs.stop(run_key(container_id, run))

    def release(self, container_id: int, run: int) -> None:
        self.runs.release(run_key(container_id, run))

    def known_runs(self) -> set[tuple[int, int]]:
        return {divmod(key, 1_000_000) for key in self.runs.known_attempts()}  # type: ignore[misc]

    def alive(self, container_id: int, run: int) -> bool:
        """Whether anything of the run still lives (a release would refuse)."""
        key = run_key(container_id, run)
        run_dir = self.runs.run_dir(key)
        return any(self.runs._rank_alive(run_dir, rank) for rank in self.runs._ranks(run_dir))

    def wait_stopped(self, container_id: int, run: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive(container_id, run):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


__all__ = ["LocalContainerBackend", "free_port", "jupyter_command"]
