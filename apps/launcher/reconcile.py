"""The launcher's reconcile loop: make the backend match what the database wants.

Level-triggered and idempotent: each pass reads every scheduled attempt (starting, running,
suspending, stopping) and what the backend sees of it, and does the one next thing that brings
them together. It keeps no memory between passes, so it can be killed at any moment and restarted
(it adopts what is still running, since the backend reports it), and two passes at once cannot
double-start anything: backends start each rank at most once, and every state change is a
conditional update (``apps.experiments.lifecycle``) that only one of them wins.

Per attempt state:
- **starting**: start the ranks not yet started (a fresh attempt-scoped token is issued for them);
  all running → ``running``; a failed rank → stop the others, ``failed``; not all running after
  ``START_TIMEOUT_SECONDS`` → stop, requeue (unschedulable).
- **running**: record rank states (a finished rank frees its node); all succeeded → ``succeeded``;
  a failed rank → stop the others, ``failed``; ranks gone → requeue (lost); a node not ready or
  disabled → stop, requeue; silent longer than the watchdog → stop, ``failed`` (hung).
- **suspending**: deliver the notice (SIGTERM) once; after ``go_suspend()`` or the grace period,
  kill; when nothing is left → ``suspended`` (the chain is requeued by lifecycle).
- **stopping**: kill; when nothing is left → ``stopped``.
Finished attempts the backend still knows are cleaned up. See docs/architecture.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from apps.accounts.services import token_create_for_attempt
from apps.cluster import services as cluster_services
from apps.cluster.choices import NodeState
from apps.cluster.models import Node
from apps.cluster.selectors import mounts_for
from apps.experiments import lifecycle, locks
from apps.experiments.choices import (
    QueueStatus,
    RankStatus,
    StopReason,
    SuspendReason,
    SuspendState,
    WorkerStatus,
    stopped_outcome,
)
from apps.experiments.models import Attempt, Rank
from apps.launcher.backends import get_backend
from apps.launcher.backends.base import (
    Backend,
    EntrypointKind,
    LaunchSpec,
    MountSpec,
    RankObservation,
    RankPhase,
)
from apps.launcher.backends.base import RankSpec as BackendRankSpec
from apps.launcher.contract import RankPlacement, local_gpu_count, rank_env
from apps.launcher.pods import pod_customisation, pod_home, run_as
from apps.logs.store import get_log_store

logger = logging.getLogger(__name__)

_PHASE_TO_STATUS = {
    RankPhase.PENDING: RankStatus.PENDING,
    RankPhase.RUNNING: RankStatus.RUNNING,
    RankPhase.SUCCEEDED: RankStatus.SUCCEEDED,
    RankPhase.FAILED: RankStatus.FAILED,
    RankPhase.KILLED: RankStatus.KILLED,
    RankPhase.MISSING: RankStatus.KILLED,
}


@dataclass
class ReconcileResult:
    started: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    finished: dict[int, str] = field(default_factory=dict)
    requeued: dict[int, str] = field(default_factory=dict)
    signalled: list[int] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    cleaned: list[int] = field(default_factory=list)
    seconds: float = 0.0


def _gpu_map() -> dict[str, tuple[int, ...]]:
    """Local backend: real GPUs (if any) split among the simulated nodes by their gpu_count."""
    total = local_gpu_count()
    if not total or settings.ROTA_BACKEND != "local":
        return {}
    mapping: dict[str, tuple[int, ...]] = {}
    cursor = 0
    for name, count in Node.objects.order_by("name").values_list("name", "gpu_count"):
        ids = tuple(i for i in range(cursor, cursor + count) if i < total)
        mapping[name] = ids
        cursor += count
    return mapping


def pod_resources(node: Node) -> tuple[float, int]:
    """CPU cores and memory bytes one rank requests on ``node``: what the node can give pods
    (allocatable, as the backend reports it; else the nominal size) less the configured headroom
    for its daemons (device plugin, monitoring, CNI), never below one core / 1 GiB when the node
    has that much. Requesting the nominal size never fits: the kubelet reserves part of it."""
    conf: dict[str, Any] = settings.ROTA_KUBERNETES
    cpu = node.allocatable_cpu_millis / 1000 if node.allocatable_cpu_millis is not None else float(node.cpu)
    memory = node.allocatable_memory_bytes if node.allocatable_memory_bytes is not None else node.memory_bytes
    if cpu > 0:
        cpu = max(min(cpu, 1.0), cpu - float(conf["HEADROOM_CPU"]))
    if memory > 0:
        memory = max(min(memory, 2**30), memory - int(conf["HEADROOM_MEMORY_BYTES"]))
    return round(cpu, 3), int(memory)


def build_spec(attempt: Attempt) -> LaunchSpec:
    """The backend's view of an attempt, with a fresh attempt-scoped token for its ranks.

    The node group's and the environment's pod settings are merged here, at each start: an admin's
    change applies to the next attempt, never to pods already running."""
    chain = attempt.chain
    ranks = sorted(attempt.ranks.all(), key=lambda r: r.rank)
    issued = token_create_for_attempt(user=chain.owner, attempt_id=attempt.pk)
    store = get_log_store()
    log_dir = str(store.attempt_dir(str(chain.pk), attempt.pk))
    environment = chain.environment
    # Variables: the pod settings', then the environment's own, then the job's and Rota's (rank_env).
    custom = pod_customisation(node_group=chain.node_group, environment=environment)
    gpus = _gpu_map()
    # The local backend runs every rank on this machine: rank 0 is reachable on loopback. The
    # kubernetes backend overrides MASTER_ADDR with rank 0's stable DNS name.
    master = "127.0.0.1"
    rank_specs = []
    for r in ranks:
        placement = RankPlacement(rank=r.rank, node=r.node.name, gpus=gpus.get(r.node.name, ()))
        env = rank_env(
            chain=chain,
            attempt=attempt,
            placement=placement,
            world_size=len(ranks),
            master_addr=master,
            token=issued.raw,
            log_dir=log_dir,
            env_defaults=custom.env,
            procs_per_node=r.node.gpu_count,
        )
        rank_specs.append(BackendRankSpec(rank=r.rank, node=r.node.name, env=env, gpus=placement.gpus))
    mounts = tuple(
        MountSpec(kind=m.kind, source=m.source, container_path=m.container_path, read_only=m.read_only)
        for m in mounts_for(
            user=chain.owner,
            task={
                "id": str(attempt.pk),
                "chain_id": str(chain.pk),
                "name": chain.name,
                "type": "training",
                "group": chain.node_group.name,
                "environment": environment.name if environment else "",
            },
        )
    )
    first_node = ranks[0].node if ranks else None
    cpu, memory_bytes = pod_resources(first_node) if first_node else (0.0, 0)
    owner = chain.owner
    identity = run_as(owner, host_lookup=settings.ROTA_BACKEND == "local")
    return LaunchSpec(
        attempt_id=attempt.pk,
        chain_id=str(chain.pk),
        user=owner.username,
        uid=identity.uid,
        gid=identity.gid,
        uid_mapped=identity.mapped,
        refuse_unmapped=settings.ROTA_LOCAL_UNMAPPED_OWNERS == "refuse",
        home=pod_home(owner.username, default=""),
        workspace=chain.workspace,
        kind=EntrypointKind(chain.kind),
        entrypoint=chain.entrypoint,
        parameters=tuple(chain.parameters),
        interpreter=environment.interpreter if environment else "python3",
        image=environment.image if environment else "",
        ranks=tuple(rank_specs),
        cpu=cpu,
        memory_bytes=memory_bytes,
        gpus_per_rank=first_node.gpu_count if first_node else 0,
        mounts=mounts,
        capabilities=custom.capabilities,
        labels={"rota.dev/group": chain.node_group.name},
        pod=custom.options,
    )


def _record_ranks(attempt: Attempt, observed: dict[int, RankObservation]) -> None:
    current = {r.rank: r for r in attempt.ranks.all()}
    for rank, obs in observed.items():
        row = current.get(rank)
        if row is None:
            continue
        status = _PHASE_TO_STATUS[obs.phase]
        # The message too: a rank stays PENDING while its reason changes (ContainerCreating, then
        # ImagePullBackOff...), and the user must see it live, not after the start timeout.
        if row.status != status or (status == RankStatus.PENDING and row.message != obs.message[:255]):
            started = timezone.make_aware(datetime.fromtimestamp(obs.started_at)) if obs.started_at else None
            lifecycle.rank_update(
                attempt_id=attempt.pk,
                rank=rank,
                status=status,
                exit_code=obs.exit_code,
                message=obs.message,
                started_at=started,
            )


def _all_gone(attempt: Attempt, observed: dict[int, RankObservation]) -> bool:
    return all(observed.get(r.rank) is None or observed[r.rank].phase.is_final for r in attempt.ranks.all())


def _first_failure(observed: dict[int, RankObservation]) -> RankObservation | None:
    failed = [o for o in observed.values() if o.phase == RankPhase.FAILED]
    return min(failed, key=lambda o: o.rank) if failed else None


def _failure_message(obs: RankObservation) -> str:
    """Why a rank failed, for people: ``rank 3 exited with code 1``, then what the backend said
    (``after suspend request``, an OOM kill …) without repeating the code."""
    said = f"exited with code {obs.exit_code}"
    rest = obs.message or ""
    if rest == said or rest.startswith(said + " "):
        rest = rest[len(said) :].strip()
        return f"rank {obs.rank} {said} {rest}" if rest else f"rank {obs.rank} {said}"
    return f"rank {obs.rank} {said}: {rest}" if rest else f"rank {obs.rank} {said}"


class Reconciler:
    """One reconcile pass (see the module docstring)."""

    def __init__(self, backend: Backend, now: datetime | None = None) -> None:
        self.backend = backend
        self.now = now or timezone.now()
        self.conf = settings.ROTA_LAUNCHER
        self.result = ReconcileResult()

    def run(self) -> ReconcileResult:
        started = time.perf_counter()
        self._nodes()
        attempts = list(
            Attempt.objects.filter(queue_status=QueueStatus.SCHEDULED)
            .select_related("chain", "chain__owner", "chain__node_group", "chain__environment")
            .prefetch_related(Prefetch("ranks", queryset=Rank.objects.select_related("node").order_by("rank")))
            .order_by("id")
        )
        for attempt in attempts:
            try:
                self._one(attempt)
            except Exception:
                # One broken attempt must not stop the others; the next pass tries again.
                logger.exception("reconciling attempt %s failed", attempt.pk)
        self._cleanup({a.pk for a in attempts})
        self.result.seconds = time.perf_counter() - started
        return self.result

    # -- nodes -----------------------------------------------------------------------------------

    def _nodes(self) -> None:
        observed = self.backend.nodes()
        if observed is None:
            return
        known = set(Node.objects.values_list("name", flat=True))
        for node in observed:
            if node.name in known:
                cluster_services.node_observe_readiness(
                    name=node.name, ready=node.ready, reason=node.reason, schedulable=node.schedulable
                )
                if node.allocatable_cpu is not None or node.allocatable_memory_bytes is not None:
                    cluster_services.node_observe_allocatable(
                        name=node.name, cpu=node.allocatable_cpu, memory_bytes=node.allocatable_memory_bytes
                    )

    # -- attempts --------------------------------------------------------------------------------

    def _one(self, attempt: Attempt) -> None:
        status = attempt.worker_status
        observed = self.backend.observe(attempt.pk)
        if status == WorkerStatus.STARTING:
            self._starting(attempt, observed)
        elif status == WorkerStatus.RUNNING:
            self._running(attempt, observed)
        elif status == WorkerStatus.SUSPENDING:
            self._suspending(attempt, observed)
        elif status == WorkerStatus.STOPPING:
            self._stopping(attempt, observed)

    def _starting(self, attempt: Attempt, observed: dict[int, RankObservation]) -> None:
        if self._node_lost(attempt) or self._drain_due(attempt) or self._disrupted(attempt, observed):
            return
        missing = [r.rank for r in attempt.ranks.all() if r.rank not in observed]
        if missing:
            self.backend.start(build_spec(attempt))
            self.result.started.append(attempt.pk)
            observed = self.backend.observe(attempt.pk)
        _record_ranks(attempt, observed)
        failure = _first_failure(observed)
        if failure is not None:
            self._fail(
                attempt, StopReason.START_FAILED if failure.started_at is None else StopReason.RANK_FAILED, failure
            )
            return
        if any(obs.phase == RankPhase.MISSING for obs in observed.values()):
            # A rank was lost while starting (its supervisor crashed): requeue now, not at the start timeout.
            self.backend.stop(attempt.pk)
            self._requeue(attempt, SuspendReason.NODE_NOT_READY, message="its processes disappeared while starting")
            return
        ranks = list(attempt.ranks.all())
        if ranks and all(
            observed.get(r.rank) and observed[r.rank].phase in (RankPhase.RUNNING, RankPhase.SUCCEEDED) for r in ranks
        ):
            if lifecycle.attempt_mark_running(attempt_id=attempt.pk):
                self.result.running.append(attempt.pk)
            attempt.refresh_from_db(fields=["worker_status"])
            self._running(attempt, observed)
            return
        self._start_timeout(attempt, observed)

    def _start_timeout(self, attempt: Attempt, observed: dict[int, RankObservation]) -> None:
        """Ranks that do not start in time: requeue with their reasons, and after
        ``START_RETRIES`` such attempts in a row fail the chain with them (an image that cannot be
        pulled is not retried forever). Ranks that are progressing (a large image being pulled,
        the container being created) get until ``PULL_TIMEOUT_SECONDS``."""
        scheduled = attempt.scheduled_at or self.now
        if self.now < scheduled + timedelta(seconds=self.conf["START_TIMEOUT_SECONDS"]):
            return
        pending = [o for o in observed.values() if o.phase == RankPhase.PENDING]
        progressing = bool(pending) and not any(o.stuck or "Unschedulable" in o.message for o in pending)
        if progressing and self.now < scheduled + timedelta(seconds=self.conf["PULL_TIMEOUT_SECONDS"]):
            return
        reasons = "; ".join(f"rank {o.rank}: {o.message}" for o in sorted(pending, key=lambda o: o.rank) if o.message)
        message = f"did not start in time ({reasons or 'no reason reported'})"
        earlier = list(
            Attempt.objects.filter(chain_id=attempt.chain_id, index__lt=attempt.index)
            .order_by("-index")
            .values_list("suspend_reason", flat=True)[: max(0, int(self.conf["START_RETRIES"]) - 1)]
        )
        in_a_row = 1 + next((i for i, r in enumerate(earlier) if r != SuspendReason.UNSCHEDULABLE), len(earlier))
        self.backend.stop(attempt.pk)
        if in_a_row >= int(self.conf["START_RETRIES"]):
            observed = self.backend.observe(attempt.pk)
            _record_ranks(attempt, observed)
            if lifecycle.attempt_mark_finished(
                attempt_id=attempt.pk,
                status=WorkerStatus.FAILED,
                stop_reason=StopReason.START_FAILED,
                message=f"{message}; gave up after {in_a_row} attempts",
            ):
                self.result.finished[attempt.pk] = WorkerStatus.FAILED
            return
        self._requeue(
            attempt,
            SuspendReason.UNSCHEDULABLE,
            message=message,
            then=lambda nxt: self._back_off(nxt, retry=in_a_row, message=message),
        )

    def _back_off(self, nxt: Attempt, *, retry: int, message: str) -> None:
        """The next attempt after ``retry`` attempts in a row did not start waits before the
        scheduler sees it: ``START_RETRY_BACKOFF_SECONDS`` doubled per retry, at most the cap (an
        image being fixed, a node draining, get time; the cluster is not hammered). The job shows
        why and until when."""
        base = float(self.conf["START_RETRY_BACKOFF_SECONDS"])
        delay = min(float(self.conf["START_RETRY_BACKOFF_MAX_SECONDS"]), base * 2 ** (retry - 1))
        if delay <= 0:
            return
        until = self.now + timedelta(seconds=delay)
        left = max(0, int(self.conf["START_RETRIES"]) - retry)
        detail = (
            f"The last attempt {message}. Retrying at {until:%H:%M:%S} UTC"
            f" (waiting {int(delay)} s; {left} more {'retry' if left == 1 else 'retries'} before the job fails)."
        )
        Attempt.objects.filter(pk=nxt.pk, queue_status=QueueStatus.QUEUED).update(
            not_before=until,
            pending_code=lifecycle.RETRY_BACKOFF_CODE,
            pending_message=detail[:500],
            pending_digest="",
            queue_position=None,
        )

    def _disrupted(self, attempt: Attempt, observed: dict[int, RankObservation]) -> bool:
        """The cluster is ending a rank (drain, eviction, preemption): suspend the attempt with
        the normal notice and grace, and requeue it once its ranks are gone — never count the
        rank's exit (or its peers' failing after it) as the job's own failure or success."""
        disrupted = sorted((o for o in observed.values() if o.disrupted), key=lambda o: o.rank)
        if not disrupted:
            return False
        _record_ranks(attempt, observed)
        first = disrupted[0]
        with transaction.atomic():
            locks.lock_chain_of(attempt.pk)  # chain before attempt, as everywhere
            Attempt.objects.filter(pk=attempt.pk).update(failure_message=f"rank {first.rank} {first.message}"[:500])
            lifecycle.attempt_request_suspend(attempt_id=attempt.pk, reason=SuspendReason.NODE_NOT_READY, now=self.now)
        self.backend.signal_suspend(attempt.pk)
        self.result.signalled.append(attempt.pk)
        return True

    def _running(self, attempt: Attempt, observed: dict[int, RankObservation]) -> None:
        if self._disrupted(attempt, observed):
            return
        _record_ranks(attempt, observed)
        failure = _first_failure(observed)
        if failure is not None:
            self._fail(attempt, StopReason.RANK_FAILED, failure)
            return
        ranks = list(attempt.ranks.all())
        if ranks and all(observed.get(r.rank) and observed[r.rank].phase == RankPhase.SUCCEEDED for r in ranks):
            codes = [observed[r.rank].exit_code or 0 for r in ranks]
            if lifecycle.attempt_mark_finished(
                attempt_id=attempt.pk, status=WorkerStatus.SUCCEEDED, exit_code=max(codes or [0])
            ):
                self.result.finished[attempt.pk] = WorkerStatus.SUCCEEDED
            self._release(attempt.pk)
            return
        if any(
            observed.get(r.rank) is None or observed[r.rank].phase in (RankPhase.KILLED, RankPhase.MISSING)
            for r in ranks
            if r.status != RankStatus.SUCCEEDED
        ):
            # Processes vanished without the platform asking: requeue so no work is lost for good.
            self.backend.stop(attempt.pk)
            self._requeue(attempt, SuspendReason.NODE_NOT_READY, message="its processes disappeared")
            return
        if self._node_lost(attempt) or self._drain_due(attempt):
            return
        self._watchdog(attempt)

    def _watchdog(self, attempt: Attempt) -> None:
        seconds = attempt.watchdog_seconds or self.conf["DEFAULT_WATCHDOG_SECONDS"]
        if not seconds:
            return
        # The log store is the record that survives restarts of this process (a rollout, a
        # recycled worker); the backend's own value only covers output not yet written there.
        known = [
            t
            for t in (
                self.backend.last_output_at(attempt.pk),
                get_log_store().last_write_time(str(attempt.chain_id), attempt.pk),
            )
            if t is not None
        ]
        reference = max(known) if known else (attempt.started_at or self.now).timestamp()
        if self.now.timestamp() - reference > seconds:
            self.backend.stop(attempt.pk)
            with transaction.atomic():
                lifecycle.transition(
                    attempt_id=attempt.pk,
                    target=WorkerStatus.STOPPING,
                    stop_reason=StopReason.HUNG,
                    stop_requested_at=self.now,
                    failure_message=f"no output for more than {int(seconds)} s (watchdog)",
                )
                lifecycle.sync_chain(chain_id=attempt.chain_id)

    def _drain_due(self, attempt: Attempt) -> bool:
        """A node of the attempt is draining and its deadline has passed: suspend the attempt with
        the notice and grace; it is requeued (not held) and the scheduler places it elsewhere."""
        due = [
            r.node
            for r in attempt.ranks.all()
            if r.holds_node
            and r.node.state == NodeState.DRAINING
            and r.node.drain_deadline is not None
            and r.node.drain_deadline <= self.now
        ]
        if not due:
            return False
        with transaction.atomic():
            locks.lock_chain_of(attempt.pk)
            reason = f"node {due[0].name} drained: {due[0].state_reason}"[:500]
            Attempt.objects.filter(pk=attempt.pk).update(failure_message=reason)
            moved = lifecycle.attempt_request_suspend(
                attempt_id=attempt.pk, reason=SuspendReason.NODE_DRAINED, now=self.now
            )
            if moved:
                lifecycle.sync_chain(chain_id=attempt.chain_id)
        if moved:
            self.backend.signal_suspend(attempt.pk)
            self.result.signalled.append(attempt.pk)
        return True

    def _node_lost(self, attempt: Attempt) -> bool:
        # A cordoned node takes no new work but its jobs go on (a drain evicts them, and the evicted
        # pods requeue the attempt); only a node that is not ready or an admin disabled ends them here.
        lost = (NodeState.NOT_READY, NodeState.DISABLED)
        bad = [r.node for r in attempt.ranks.all() if r.holds_node and r.node.state in lost]
        if not bad:
            return False
        node = bad[0]
        # With the notice and grace, not a kill: ranks on healthy nodes may checkpoint, and the
        # backend never force-deletes a pod on a node that is not ready but still exists.
        self.backend.signal_suspend(attempt.pk)
        reason = node.state_reason or node.get_state_display()
        self._requeue(attempt, SuspendReason.NODE_NOT_READY, message=f"node {node.name} is {node.state}: {reason}")
        return True

    def _suspending(self, attempt: Attempt, observed: dict[int, RankObservation]) -> None:
        _record_ranks(attempt, observed)
        if _all_gone(attempt, observed):
            nxt = lifecycle.attempt_mark_suspended(attempt_id=attempt.pk)
            if nxt is not None:
                self.result.requeued[attempt.pk] = attempt.suspend_reason
            self._release(attempt.pk)
            return
        grace_end = (attempt.suspend_requested_at or self.now) + timedelta(seconds=self.conf["GRACE_SECONDS"])
        if attempt.suspend_state == SuspendState.READY or self.now >= grace_end:
            self.backend.stop(attempt.pk, reason="suspend")
            self.result.killed.append(attempt.pk)
        else:
            self.backend.signal_suspend(attempt.pk)
            self.result.signalled.append(attempt.pk)
        observed = self.backend.observe(attempt.pk)
        if _all_gone(attempt, observed):
            _record_ranks(attempt, observed)
            if lifecycle.attempt_mark_suspended(attempt_id=attempt.pk) is not None:
                self.result.requeued[attempt.pk] = attempt.suspend_reason
            self._release(attempt.pk)

    def _stopping(self, attempt: Attempt, observed: dict[int, RankObservation]) -> None:
        if not _all_gone(attempt, observed):
            self.backend.stop(attempt.pk)
            self.result.killed.append(attempt.pk)
            observed = self.backend.observe(attempt.pk)
        _record_ranks(attempt, observed)
        if _all_gone(attempt, observed):
            status = stopped_outcome(attempt.stop_reason)
            if lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=status, message=attempt.failure_message):
                self.result.finished[attempt.pk] = status
            self._release(attempt.pk)

    # -- outcomes --------------------------------------------------------------------------------

    def _fail(self, attempt: Attempt, reason: str, failure: RankObservation) -> None:
        self.backend.stop(attempt.pk)
        observed = self.backend.observe(attempt.pk)
        _record_ranks(attempt, observed)
        if lifecycle.attempt_mark_finished(
            attempt_id=attempt.pk,
            status=WorkerStatus.FAILED,
            stop_reason=reason,
            exit_code=failure.exit_code,
            message=_failure_message(failure),
        ):
            self.result.finished[attempt.pk] = WorkerStatus.FAILED
        if _all_gone(attempt, observed):
            self._release(attempt.pk)

    def _requeue(
        self, attempt: Attempt, reason: str, message: str = "", then: Callable[[Attempt], None] | None = None
    ) -> Attempt | None:
        """Requeue the chain; ``then(next_attempt)`` runs in the same transaction (before the
        scheduling pass it asks for)."""
        with transaction.atomic():
            locks.lock_chain_of(attempt.pk)  # chain before attempt, as everywhere
            if message:
                Attempt.objects.filter(pk=attempt.pk).update(failure_message=message[:500])
            nxt = lifecycle.attempt_mark_suspended(attempt_id=attempt.pk, reason=reason)
            if nxt is not None and then is not None:
                then(nxt)
        if nxt is not None:
            self.result.requeued[attempt.pk] = reason
            logger.info("attempt %s requeued (%s) as attempt %s", attempt.pk, reason, nxt.pk)
        return nxt

    def _release(self, attempt_id: int) -> None:
        """Forget a finished attempt's runtime state; if its processes are still winding down,
        the cleanup of a later pass does it."""
        try:
            self.backend.release(attempt_id)
        except Exception:
            logger.debug("release of attempt %s deferred", attempt_id, exc_info=True)

    def _cleanup(self, active: set[int]) -> None:
        """Stop and forget what the backend still has of finished attempts."""
        leftovers = self.backend.known_attempts() - active
        if not leftovers:
            return
        rows = dict(
            Attempt.objects.filter(pk__in=leftovers, queue_status=QueueStatus.FINISHED).values_list(
                "pk", "worker_status"
            )
        )
        unknown = leftovers - set(Attempt.objects.filter(pk__in=leftovers).values_list("pk", flat=True))
        for attempt_id in sorted(set(rows) | unknown):
            observed = self.backend.observe(attempt_id)
            if observed and not all(o.phase.is_final for o in observed.values()):
                if rows.get(attempt_id) == WorkerStatus.SUSPENDED:
                    self.backend.signal_suspend(attempt_id)  # requeued with ranks in their grace: let them save
                else:
                    self.backend.stop(attempt_id)
                continue
            try:
                self.backend.release(attempt_id)
                self.result.cleaned.append(attempt_id)
            except Exception:
                logger.warning("could not release attempt %s yet", attempt_id, exc_info=True)


def reconcile(now: datetime | None = None, backend: Backend | None = None) -> ReconcileResult:
    """One reconcile pass with the configured backend."""
    return Reconciler(backend or get_backend(), now).run()
