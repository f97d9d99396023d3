"""The container backend interface: how a development container's services become processes or a pod.

Like the job backends, a container backend is stateless towards the database: it receives plain
data (``ContainerSpec``), acts, and reports what it sees. ``apps/launcher/container_reconcile.py``
owns the decisions. Every method is idempotent and safe to call concurrently. A run of a container
is identified by ``key`` (container id and run number), so a restart never mixes two runs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from apps.launcher.backends.base import MountSpec, PodOptions, RankPhase


@dataclass(frozen=True)
class ServiceSpec:
    rank: int  # the service's index in the run (its log file)
    name: str
    protocol: str  # "http" | "tcp" | "" (start-up script)
    port: int
    command: str  # custom services: the shell command; built-ins: ""


@dataclass(frozen=True)
class ContainerSpec:
    container_id: int
    run: int
    owner: str
    name: str
    node: str
    base_url: str  # where JupyterLab is served, e.g. "/containers/alice/lab/"
    token: str  # JupyterLab's token for this run (see apps.containers.tokens)
    workspace: str  # the working directory (local) / $HOME (kubernetes)
    image: str
    cpu: int
    memory_bytes: int
    gpus: int
    services: tuple[ServiceSpec, ...]
    startup_script: str = ""
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[MountSpec, ...] = ()
    uid: int = 0
    gid: int | None = None
    uid_mapped: bool = False
    capabilities: tuple[str, ...] = ()
    # tcp service name → NodePort (kubernetes); locally only "ssh": the port of the run's sshd
    node_ports: dict[str, int] = field(default_factory=dict)
    # What admins set for the pods of the container's node group and environment (kubernetes),
    # as for jobs; memlock and further capabilities are in ``capabilities``, variables in ``env``.
    pod: PodOptions = field(default_factory=PodOptions)

    @property
    def key(self) -> int:
        return run_key(self.container_id, self.run)


def run_key(container_id: int, run: int) -> int:
    """One integer per (container, run): the run's directory / object name."""
    return container_id * 1_000_000 + run


@dataclass(frozen=True)
class ServiceObservation:
    name: str
    phase: RankPhase
    message: str = ""
    exit_code: int | None = None


class ContainerBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    def start(self, spec: ContainerSpec) -> None:
        """Start every service of the run not started yet. Never starts one twice."""

    @abc.abstractmethod
    def observe(self, container_id: int, run: int) -> dict[str, ServiceObservation]:
        """Per-service state of one run; services the backend does not know are absent."""

    @abc.abstractmethod
    def endpoints(self, container_id: int, run: int) -> dict[str, str]:
        """Where the run's HTTP services answer, service name → "host:port" (for the proxy)."""

    @abc.abstractmethod
    def restart_service(self, spec: ContainerSpec, service: str) -> bool:
        """Stop one service's processes (SIGTERM, SIGKILL after the stop grace) and start it again
        (same run, same log). Never waits for the grace: returns False while the service is still
        ending (call again on a later pass), True once the restart is done or handed over."""

    @abc.abstractmethod
    def stop(self, container_id: int, run: int) -> None:
        """Stop everything of the run: SIGTERM to its services, SIGKILL to what is left after the
        stop grace. Never waits for the grace: call it on each pass until ``observe`` shows every
        service ended. Repeats are harmless."""

    @abc.abstractmethod
    def release(self, container_id: int, run: int) -> None:
        """Forget a run whose services are all ended (never its logs)."""

    @abc.abstractmethod
    def known_runs(self) -> set[tuple[int, int]]:
        """(container id, run) of everything the backend still has."""

    def gpu_utilisation(self, container_id: int, run: int) -> float | None:
        """The run's GPU utilisation now, in percent (the busiest of its GPUs), or None when it
        cannot be measured here. None never counts as idle (idle reclaim, docs/containers.md)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads (tests, shutdown)."""
