"""The execution backend interface: how an attempt's ranks become running processes or pods.

A backend is *stateless towards the database*: it receives plain data (``LaunchSpec``), acts on
the machine or the cluster, and reports what it sees (``RankObservation``). The reconcile loop
(``apps/launcher/reconcile.py``) owns every decision — when to start, when the grace period is
over, what a failed rank means — and calls these methods idempotently: calling ``start`` twice for
the same attempt, ``suspend`` on something already gone, or ``stop`` on something already stopped
must be harmless. Two reconcile passes may call the same method at the same moment.

Two implementations: ``local`` (process groups on this machine) and ``kubernetes`` (one pod per
rank). Nothing outside ``apps/launcher/`` imports either.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from apps.logs.store import LogPosition, LogStamp


class EntrypointKind(enum.StrEnum):
    PYTHON = "python"
    BASH = "bash"
    EXECUTABLE = "executable"


class RankPhase(enum.StrEnum):
    """What the backend sees of one rank."""

    PENDING = "pending"  # accepted, not running yet (pod scheduling, image pull, process spawning)
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exited 0
    FAILED = "failed"  # exited non-zero on its own
    KILLED = "killed"  # ended by a signal the platform sent (suspend / stop)
    MISSING = "missing"  # the backend knows nothing of it (never started, or lost)

    @property
    def is_final(self) -> bool:
        return self in {RankPhase.SUCCEEDED, RankPhase.FAILED, RankPhase.KILLED, RankPhase.MISSING}


@dataclass(frozen=True)
class MountSpec:
    """A resolved mount: a host path, a PVC or a configmap → a path in the container."""

    kind: str  # "host_path" | "pvc" | "configmap"
    source: str  # host path, claim name or configmap name
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class RankSpec:
    rank: int
    node: str
    env: dict[str, str]  # the full env contract for this rank (computed by the launcher)
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class PodOptions:
    """What admins set for the pods of a job's node group and environment, merged
    (``apps.cluster.pod_settings``): kubernetes only; the local backend has no pods. Linux
    capabilities (memlock = ``IPC_LOCK``) go to ``LaunchSpec.capabilities``, variables to the env."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, object], ...] = ()
    runtime_class_name: str = ""
    priority_class_name: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)  # extended resources per rank (RDMA...)
    host_network: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a backend needs to start one attempt; built by the launcher from the database."""

    attempt_id: int
    chain_id: str
    user: str  # user name
    uid: int  # numeric user id inside containers (non-root): the owner's POSIX uid
    workspace: str  # absolute path; the working directory of every rank
    kind: EntrypointKind
    entrypoint: str  # file name (relative to workspace) or absolute path / executable
    parameters: tuple[str, ...]  # argv after the entrypoint
    interpreter: str  # python interpreter for PYTHON entrypoints
    image: str  # container image (kubernetes only)
    ranks: tuple[RankSpec, ...]
    cpu: float = 0.0  # per rank request (kubernetes); 0 = unset
    memory_bytes: int = 0  # per rank limit (kubernetes); 0 = unset
    gpus_per_rank: int = 0  # nvidia.com/gpu request (kubernetes)
    mounts: tuple[MountSpec, ...] = ()
    capabilities: tuple[str, ...] = ()  # Linux capabilities an admin granted; empty = none
    labels: dict[str, str] = field(default_factory=dict)
    gid: int | None = None  # the owner's POSIX gid (kubernetes: runAsGroup); None = the image's
    home: str = ""  # $HOME inside containers (kubernetes); "" = the workspace
    # The owner has a POSIX account (``apps.accounts.posix``: an admin's mapping, or this host's
    # account of the same name): the local backend, when it
    # runs as root, starts the ranks as that uid/gid, as Slurm does (see docs/security.md).
    uid_mapped: bool = False
    # As root with no such account: refuse to start the job instead of running it as root.
    refuse_unmapped: bool = False
    pod: PodOptions = field(default_factory=PodOptions)


@dataclass(frozen=True)
class RankObservation:
    rank: int
    phase: RankPhase
    node: str = ""
    exit_code: int | None = None
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    message: str = ""  # e.g. "ImagePullBackOff", "OOMKilled", "killed by SIGKILL"
    # The cluster, not the platform, is ending it (drain, eviction, preemption): requeue, never
    # count it as the job's own failure or success.
    disrupted: bool = False
    # PENDING and not getting anywhere by itself (image cannot be pulled, bad container config),
    # as opposed to progressing (pulling a large image, creating the container).
    stuck: bool = False


@dataclass(frozen=True)
class NodeObservation:
    """A node as the backend sees it (kubernetes: the Node object's Ready condition)."""

    name: str
    ready: bool  # the kubelet reports: False = NotReady (its pods may be gone or unreachable)
    reason: str = ""
    schedulable: bool = True  # False = cordoned: takes no new work, running jobs go on
    allocatable_cpu: float | None = None  # cores pods may request in all (kubernetes), None = unknown
    allocatable_memory_bytes: int | None = None


LogSink = Callable[[int, int, Iterable[str]], None]
"""``sink(attempt_id, rank, lines)``: where a backend that *streams* logs (kubernetes) delivers
them. Lines come without trailing newlines and without timestamps; the log store adds both."""


class LogJournal(Protocol):
    """Where a backend that streams logs writes them *exactly once*, and where it resumes from.

    The launcher's journal is the log store fenced by the cluster-owner lease
    (``apps.launcher.log_journal``): only the process that owns the cluster writes, and the store
    skips lines it already holds, so a restart, a reconnect or an ownership hand-over neither
    repeats nor loses a line."""

    def accepting(self) -> bool:
        """May this process write now? (False: it does not own the cluster; follow nothing.)"""
        ...

    def position(self, attempt_id: int, rank: int) -> LogPosition | None:
        """The newest stored stamp of the rank's log and how many lines end the log with it."""
        ...

    def append(self, attempt_id: int, rank: int, lines: Sequence[tuple[LogStamp, str]]) -> int | None:
        """Store the lines not stored yet; how many were new, or ``None`` if refused (not owner)."""
        ...


class Backend(abc.ABC):
    """One execution backend. All methods are idempotent and safe to call concurrently."""

    name: str

    @abc.abstractmethod
    def start(self, spec: LaunchSpec) -> None:
        """Start every rank of the attempt that is not already started. Never starts a rank twice."""

    @abc.abstractmethod
    def signal_suspend(self, attempt_id: int) -> None:
        """Deliver the suspend notice (SIGTERM) to every rank still running. Repeats are harmless."""

    @abc.abstractmethod
    def stop(self, attempt_id: int, *, reason: str = "stop") -> None:
        """Kill every rank of the attempt at once (SIGKILL / delete with grace 0).

        ``reason`` is ``"stop"``, or ``"suspend"`` when the kill ends a suspend (the job said it
        was ready, or its grace period ran out); backends that can, say it in the rank's last log
        line. A stop is never turned back into a suspend."""

    @abc.abstractmethod
    def observe(self, attempt_id: int) -> dict[int, RankObservation]:
        """Per-rank state of one attempt; ranks the backend does not know are absent."""

    @abc.abstractmethod
    def known_attempts(self) -> set[int]:
        """Ids of every attempt the backend still has anything of (for adoption and cleanup)."""

    @abc.abstractmethod
    def release(self, attempt_id: int) -> None:
        """Forget a finished attempt: remove its runtime state (never its logs)."""

    def nodes(self) -> list[NodeObservation] | None:
        """Node readiness as the backend sees it, or ``None`` if it has no opinion (local)."""
        return None

    def last_output_at(self, attempt_id: int) -> float | None:
        """Epoch seconds of the newest log line of any rank, for the hang watchdog; None if none."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release connections and threads (tests, shutdown)."""
