"""A deterministic discrete-event simulation of a GPU cluster driven by the real scheduling policy.

    .venv/bin/python -m bench.simulate                         # standard trace, every policy
    .venv/bin/python -m bench.simulate --seed 2 --seed 3       # other seeds
    .venv/bin/python -m bench.simulate --trace history.csv     # replay a site's own history
    .venv/bin/python -m bench.simulate --write-trace t.csv     # write the synthetic trace as CSV
    .venv/bin/python -m bench.simulate --charts docs/img/sim   # also draw the PNG charts

Virtual time, no database, no processes: every ``tick`` seconds (one scheduling pass) the simulator
builds the ``policy.Snapshot`` the driver would load, asks a policy for a ``Plan`` and applies it as
the driver and the launcher would: a start holds its nodes at once; a suspend request keeps the
victim on its nodes for the grace period, then frees them and requeues the chain as a new attempt
which restarts from the job's last checkpoint; an ABOVE_NORMAL demotion changes the attempt's
effective priority. Jobs make progress after a start-up (``restart_cost``) at a constant rate and
save a checkpoint every ``checkpoint`` seconds of work; the work since the last checkpoint is lost
when they are suspended. Fair-share usage decays with the configured half-life as in the driver.

Policies compared on the same trace (``POLICIES``):
- ``rota``: ``apps.scheduler.policy.plan`` with its defaults, and ``rota-no-<mechanism>`` variants
  with one mechanism switched off through its setting;
- ``hai-fifo-preempt``: a per-tick re-implementation of HAI Platform's open FIFO scheduler
  (``scheduler/modules/assigners/simple_fifo.py``, see /work/shared/reference/hai-platform.md §3):
  quota taken in chain order (oldest chain first, running and waiting alike), then strict priority
  and FIFO; the prefix whose cumulative node count fits the group may run, every running job
  outside it is suspended, no backfill;
- ``fifo``: the same order without preemption (running jobs keep their nodes).

The synthetic trace (``synthetic_trace``) follows the shape of published GPU-cluster traces:
job sizes heavily skewed to one node with a tail of large gangs and log-normal run times from
minutes to days (Microsoft Philly, Jeon et al., ATC'19; SenseTime Helios, Hu et al., SC'21), Poisson
arrivals whose rate follows a daily cycle (both papers show a diurnal submission pattern), scaled so
the offered work is ``load`` times the cluster's capacity. The metrics are described in
``Metrics`` and docs/scheduling-quality.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.scheduler.policy import (
    LEVELS,
    Node,
    Plan,
    PolicyConfig,
    Priority,
    Running,
    Snapshot,
    Start,
    Suspend,
    SuspendReason,
    Waiting,
    plan,
)

HOUR = 3600.0
DAY = 24 * HOUR
GROUP = "g"
P = Priority

# --------------------------------------------------------------------------------------------------
# Traces


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One submitted job: a row of the CSV trace format."""

    job_id: int
    user: str
    submit: float  # seconds from the start of the trace
    nodes: int
    work: float  # seconds of progress needed at its node count
    priority: int
    checkpoint: float = 1800.0  # seconds of work between two checkpoints (math.inf: never)
    estimate: float | None = None  # the run time its owner declared (seconds, start-up included); None: none


@dataclass(frozen=True, slots=True)
class Trace:
    jobs: tuple[JobSpec, ...]
    quotas: Mapping[str, Mapping[tuple[str, int], int]]  # user -> (group, level) -> nodes
    duration: float  # seconds simulated (arrivals after it are ignored)
    nodes: int = 128
    gpus_per_node: int = 8
    rooms: int = 4
    name: str = "trace"


CSV_FIELDS = ("job_id", "user", "submit_s", "nodes", "work_s", "priority", "checkpoint_s", "estimate_s")
OPTIONAL_FIELDS = frozenset({"checkpoint_s", "estimate_s"})

#: quota of every user of the synthetic trace, per level (nodes held at once)
DEFAULT_QUOTA: Mapping[int, int] = {
    int(P.HIGH): 32,
    int(P.ABOVE_NORMAL): 32,
    int(P.NORMAL): 64,
    int(P.LOW): 128,
}
#: share of the synthetic jobs at each level
PRIORITY_MIX: tuple[tuple[int, float], ...] = (
    (int(P.HIGH), 0.08),
    (int(P.ABOVE_NORMAL), 0.12),
    (int(P.NORMAL), 0.65),
    (int(P.LOW), 0.15),
)
#: job size (nodes of 8 GPUs) -> share: most jobs are small, a few are big gangs (Philly, Helios)
SIZE_MIX: tuple[tuple[int, float], ...] = ((1, 0.45), (2, 0.15), (4, 0.15), (8, 0.15), (16, 0.07), (32, 0.03))
WORK_MEDIAN = HOUR  # log-normal run time: median 1 h, sigma 1.5 (p5 ~ 5 min, p99 ~ 33 h)
WORK_SIGMA = 1.5
WORK_MIN, WORK_MAX = 300.0, 3 * DAY


def _pick(rng: random.Random, mix: Sequence[tuple[int, float]]) -> int:
    x = rng.random()
    acc = 0.0
    for value, share in mix:
        acc += share
        if x < acc:
            return value
    return mix[-1][0]


def _work(rng: random.Random) -> float:
    return min(WORK_MAX, max(WORK_MIN, rng.lognormvariate(math.log(WORK_MEDIAN), WORK_SIGMA)))


#: run-time estimates of the synthetic trace ("user"): ESTIMATE_SHARE of the jobs declare one, the real run
#: time times a log-normal factor of median ESTIMATE_FACTOR and sigma ESTIMATE_SIGMA: most ask for about twice
#: what they need, some far more, and one in five for less (users' requested run times are mostly large
#: over-estimates: Tsafrir, Etsion & Feitelson, "Backfilling using system-generated predictions rather than
#: user runtime estimates", IEEE TPDS 2007). "exact" gives every job its real run time, "none" no estimate.
ESTIMATE_SHARE = 0.8
ESTIMATE_FACTOR = 2.0
ESTIMATE_SIGMA = 0.8
ESTIMATE_MODES = ("user", "exact", "none")


def _estimate(rng: random.Random, work: float, restart_cost: float, mode: str) -> float | None:
    """One job's declared run time (start-up included) under an estimate ``mode``; ``rng`` is drawn from in
    every mode, so that the modes give the same trace otherwise."""
    declares = rng.random() < ESTIMATE_SHARE
    factor = rng.lognormvariate(math.log(ESTIMATE_FACTOR), ESTIMATE_SIGMA)
    if mode == "none":
        return None
    if mode == "exact":
        return round(work + restart_cost, 1)
    if mode != "user":
        raise ValueError(f"unknown estimate mode {mode!r}; known: {', '.join(ESTIMATE_MODES)}")
    return round((work + restart_cost) * factor, 1) if declares else None


def synthetic_trace(
    seed: int = 1,
    *,
    nodes: int = 128,
    users: int = 24,
    days: float = 3.0,
    load: float = 1.5,
    checkpoint: float = 1800.0,
    estimates: str = "user",
    restart_cost: float = 300.0,
) -> Trace:
    """The standard synthetic trace: Poisson arrivals with a daily cycle at ``load`` x capacity.

    Jobs (user, size, work, priority) are drawn until their node-seconds reach ``load`` x the cluster's
    node-seconds, so every seed offers the same load however heavy its tail; their arrival times are
    a Poisson process conditioned on that count: independent draws from the daily intensity
    (thinning), busiest mid-afternoon and quietest at night, sorted.
    """
    rng = random.Random(seed)
    when = random.Random(seed * 7919 + 17)
    names = [f"u{i:02d}" for i in range(users)]
    weights = [1.0 / (i + 1) ** 0.7 for i in range(users)]  # a few heavy users, many light ones
    duration = days * DAY
    target = load * nodes * duration
    drawn: list[tuple[str, int, float, int]] = []
    offered = 0.0
    while offered < target:
        size, work = _pick(rng, SIZE_MIX), round(_work(rng), 1)
        drawn.append((rng.choices(names, weights)[0], size, work, _pick(rng, PRIORITY_MIX)))
        offered += size * work
    times: list[float] = []
    while len(times) < len(drawn):
        t = when.uniform(0.0, duration)
        if when.random() * 1.6 < 1 + 0.6 * math.sin(2 * math.pi * (t / DAY - 0.375)):
            times.append(round(t, 1))
    times.sort()
    guess = random.Random(seed * 104729 + 3)  # its own stream: the jobs and times above do not change
    jobs = [
        JobSpec(
            job_id=i + 1,
            user=user,
            submit=t,
            nodes=size,
            work=work,
            priority=prio,
            checkpoint=checkpoint,
            estimate=_estimate(guess, work, restart_cost, estimates),
        )
        for i, (t, (user, size, work, prio)) in enumerate(zip(times, drawn, strict=True))
    ]
    quotas = {u: {(GROUP, lvl): q for lvl, q in DEFAULT_QUOTA.items()} for u in names}
    return Trace(tuple(jobs), quotas, duration, nodes=nodes, name=f"synthetic seed {seed}")


def write_trace(trace: Trace, path: Path) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_FIELDS)
        for j in trace.jobs:
            out.writerow(
                [
                    j.job_id,
                    j.user,
                    j.submit,
                    j.nodes,
                    j.work,
                    Priority(j.priority).name,
                    j.checkpoint,
                    "" if j.estimate is None else j.estimate,
                ]
            )


def read_trace(path: Path, *, nodes: int = 128, quota: Mapping[int, int] = DEFAULT_QUOTA) -> Trace:
    """Read a CSV trace (header ``CSV_FIELDS``; priority by name or number; checkpoint_s may be empty).

    Every user gets ``quota`` per level; the simulated span runs to the last submission plus a day.
    """
    jobs: list[JobSpec] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(CSV_FIELDS) - set(reader.fieldnames or ()) - OPTIONAL_FIELDS
        if missing:
            raise SystemExit(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected {','.join(CSV_FIELDS)}")
        for line, row in enumerate(reader, start=2):
            try:
                prio = row["priority"].strip()
                priority = int(prio) if prio.lstrip("-").isdigit() else int(Priority[prio.upper()])
                ckpt = (row.get("checkpoint_s") or "").strip()
                est = (row.get("estimate_s") or "").strip()
                job = JobSpec(
                    job_id=int(row["job_id"]),
                    user=row["user"].strip(),
                    submit=float(row["submit_s"]),
                    nodes=int(row["nodes"]),
                    work=float(row["work_s"]),
                    priority=priority,
                    checkpoint=float(ckpt) if ckpt else 1800.0,
                    estimate=float(est) if est else None,
                )
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"{path}:{line}: bad row ({exc}): {row}") from exc
            if job.nodes < 1 or job.work <= 0 or job.submit < 0 or job.priority not in LEVELS:
                raise SystemExit(f"{path}:{line}: nodes >= 1, work_s > 0, submit_s >= 0 and a real priority needed")
            jobs.append(job)
    jobs.sort(key=lambda j: (j.submit, j.job_id))
    users = sorted({j.user for j in jobs})
    quotas = {u: {(GROUP, lvl): q for lvl, q in quota.items()} for u in users}
    end = max((j.submit for j in jobs), default=0.0) + DAY
    return Trace(tuple(jobs), quotas, end, nodes=nodes, name=path.name)


# --------------------------------------------------------------------------------------------------
# Policies


class Policy:
    """Turns a snapshot into a plan; ``sim`` gives baselines the chain facts a snapshot lacks."""

    name = "policy"

    def decide(self, snapshot: Snapshot, sim: Simulation) -> Plan:
        raise NotImplementedError


class RotaPolicy(Policy):
    def __init__(self, name: str = "rota", config: PolicyConfig | None = None) -> None:
        self.name = name
        self.config = config or PolicyConfig()

    def decide(self, snapshot: Snapshot, sim: Simulation) -> Plan:
        return plan(dataclasses.replace(snapshot, config=self.config))


class FifoPolicy(Policy):
    """HAI Platform's open FIFO assigner + matcher, per tick (with or without suspending)."""

    def __init__(self, name: str, *, preempt: bool) -> None:
        self.name = name
        self.preempt = preempt

    def decide(self, snapshot: Snapshot, sim: Simulation) -> Plan:
        capacity = sum(1 for n in snapshot.nodes if n.schedulable)
        held = {name for r in snapshot.running for name in r.nodes}
        free = sorted(n.name for n in snapshot.nodes if n.schedulable and n.name not in held)
        # (priority, first submission, attempt id, running?, nodes, item)
        tasks: list[tuple[int, float, int, bool, int, Any]] = []
        for r in snapshot.running:
            tasks.append((r.priority, sim.first_submit(r.chain_id), r.attempt_id, True, len(r.nodes), r))
        for w in snapshot.waiting:
            tasks.append((w.priority, w.first_submitted_at, w.attempt_id, False, w.node_count, w))
        # 1. quota in chain order, running and queued alike
        left: dict[tuple[str, int], int] = {}
        in_quota = []
        # without preemption a running job keeps its quota: it cannot be taken back
        for t in sorted(tasks, key=lambda t: (self.preempt or not t[3], t[1], t[2])):
            item = t[5]
            key = (item.user, t[0])
            q = left.setdefault(key, snapshot.quotas.get(item.user, {}).get((GROUP, t[0]), 0))
            if t[4] <= q:
                left[key] = q - t[4]
                in_quota.append(t)
        # 2. strict priority then FIFO; the prefix that fits may run (no backfill)
        order = sorted(in_quota, key=lambda t: (-t[0], t[1], t[2]))
        if not self.preempt:  # running jobs keep their nodes and come first
            order = [t for t in order if t[3] and not t[5].suspending] + [t for t in order if not t[3]]
        can_run: set[int] = set()
        total = 0
        for t in order:
            if t[3] and t[5].suspending:
                continue  # being suspended: its nodes come back to the pool
            if total + t[4] > capacity:
                break
            total += t[4]
            can_run.add(t[2])
        starts: list[Start] = []
        suspends: list[Suspend] = []
        if self.preempt:  # a running job outside its quota is not runnable either: suspended
            allowed = {t[2] for t in in_quota}
            for t in sorted(tasks, key=lambda t: t[2]):
                if t[3] and t[2] not in allowed and not t[5].suspending:
                    suspends.append(Suspend(t[2], SuspendReason.PREEMPTED, 0))
        for t in order:
            if t[3]:
                if t[2] not in can_run and not t[5].suspending and self.preempt:
                    suspends.append(Suspend(t[2], SuspendReason.PREEMPTED, 0))
            elif t[2] in can_run and len(free) >= t[4]:
                starts.append(Start(t[2], tuple(free[: t[4]]), t[0]))
                free = free[t[4] :]
        suspended = {s.attempt_id for s in suspends}
        keeps = tuple(sorted(r.attempt_id for r in snapshot.running if r.attempt_id not in suspended))
        return Plan(tuple(starts), tuple(suspends), (), keeps, (), {})


def policies(names: Iterable[str] | None = None) -> list[Policy]:
    """The policies compared, by name (all of ``POLICIES`` by default)."""
    table = POLICIES
    chosen = list(table) if names is None else list(names)
    unknown = [n for n in chosen if n not in table]
    if unknown:
        raise SystemExit(f"unknown policy {', '.join(unknown)}; known: {', '.join(table)}")
    return [table[n]() for n in chosen]


_OFF = math.inf
POLICIES: dict[str, Callable[[], Policy]] = {
    "rota": lambda: RotaPolicy(),
    "hai-fifo-preempt": lambda: FifoPolicy("hai-fifo-preempt", preempt=True),
    "fifo": lambda: FifoPolicy("fifo", preempt=False),
    "rota-no-timeshare": lambda: RotaPolicy("rota-no-timeshare", PolicyConfig(time_slice_seconds=_OFF)),
    "rota-no-reservation": lambda: RotaPolicy("rota-no-reservation", PolicyConfig(reservation_wait_seconds=_OFF)),
    "rota-no-aging": lambda: RotaPolicy("rota-no-aging", PolicyConfig(above_normal_aging_seconds=_OFF)),
    "rota-no-fairshare": lambda: RotaPolicy("rota-no-fairshare", PolicyConfig(fairshare_half_life_seconds=0.0)),
    # suspend at once, whatever the victim's last checkpoint (no checkpoint-aware suspension)
    "rota-no-checkpoint-wait": lambda: RotaPolicy(
        "rota-no-checkpoint-wait", PolicyConfig(checkpoint_fresh_seconds=_OFF, urgent_priority=0)
    ),
    # ask no stale victim to checkpoint: wait for the job's own schedule (as with jobs that ignore requests)
    "rota-no-checkpoint-request": lambda: RotaPolicy(
        "rota-no-checkpoint-request", PolicyConfig(request_checkpoints=False)
    ),
    # non-urgent waiters suspend as soon as they are blocked
    "rota-no-preempt-wait": lambda: RotaPolicy("rota-no-preempt-wait", PolicyConfig(preempt_wait_seconds=0.0)),
    # fair share alone orders a level, however long a job has waited
    "rota-no-starvation": lambda: RotaPolicy("rota-no-starvation", PolicyConfig(starvation_seconds=_OFF)),
    # run-time estimates ignored (as when nobody declares one): jobs past starvation_seconds go oldest first
    "rota-no-estimates": lambda: RotaPolicy("rota-no-estimates", PolicyConfig(use_estimates=False)),
    # EASY backfill: a reservation's idle nodes also go to jobs expected to be done before it can start
    "rota-estimate-backfill": lambda: RotaPolicy("rota-estimate-backfill", PolicyConfig(estimate_backfill=True)),
    # ... and to lower-level jobs it will be able to suspend by then
    "rota-suspendable-backfill": lambda: RotaPolicy(
        "rota-suspendable-backfill", PolicyConfig(estimate_backfill=True, backfill_suspendable=True)
    ),
    # the slice of the first round of issue 11 (4 h, HAI's constant)
    "rota-4h-slices": lambda: RotaPolicy("rota-4h-slices", PolicyConfig(time_slice_seconds=4 * HOUR)),
    # the time-share and anti-thrash constants before issue 11 (1 h slice, 5 min minimum run)
    "rota-short-slices": lambda: RotaPolicy(
        "rota-short-slices", PolicyConfig(time_slice_seconds=3600.0, min_run_seconds=300.0)
    ),
}

# --------------------------------------------------------------------------------------------------
# The simulation


@dataclass(slots=True)
class _Job:
    spec: JobSpec
    saved: float = 0.0  # work saved in checkpoints (a restart resumes from here)
    first_start: float | None = None
    done_at: float | None = None
    attempts: int = 0
    ran: float = 0.0  # seconds its ended attempts ran
    claim: bool = False  # a job was suspended for its waiting attempt
    last_reason: str = ""  # why its last attempt was suspended (its restart is charged to that)
    last_cause: str = ""  # the same with the victim's and the beneficiary's levels (Metrics.losses)

    def remaining_estimate(self) -> float | None:
        """What the driver would pass as ``Waiting.run_estimate``: the declared run time less what the
        chain ran; None without an estimate or once the job has run past it."""
        est = self.spec.estimate
        if est is None or est - self.ran <= 0:
            return None
        return est - self.ran


@dataclass(slots=True)
class _Attempt:
    attempt_id: int
    job: _Job
    queued_at: float
    started_at: float = 0.0
    nodes: tuple[str, ...] = ()
    priority: int = 0
    quota_priority: int = 0
    base: float = 0.0  # job.saved when it started
    release_at: float | None = None  # suspend requested: nodes held until then
    reason: SuspendReason | None = None
    asked: tuple[float, float] | None = None  # checkpoint requested: (time it saves, work saved then)
    victim_of: int = 0  # priority of the job it was suspended for (-1: nobody)
    ckpt_age: float = 0.0  # age of its last checkpoint when the suspend was requested
    expected_end: float | None = None  # started_at + its remaining estimate (Running.expected_end)

    def progress_at(self, t: float, restart_cost: float) -> float:
        """Work done in total by time ``t`` (never more than the job needs)."""
        return min(self.job.spec.work, self.base + max(0.0, t - self.started_at - restart_cost))

    def checkpoint_at(self, t: float, restart_cost: float) -> tuple[float, float | None]:
        """(work saved, time of the last checkpoint of this attempt or None) at time ``t``."""
        ci = self.job.spec.checkpoint
        done = self.progress_at(t, restart_cost)
        if done >= self.job.spec.work:
            return done, t
        saved, at = self.base, None
        if math.isfinite(ci) and ci > 0:
            periodic = math.floor(done / ci) * ci
            if periodic > self.base:
                saved, at = periodic, self.started_at + restart_cost + (periodic - self.base)
        if self.asked is not None and self.asked[0] <= t and (at is None or self.asked[0] >= at):
            saved, at = self.asked[1], self.asked[0]  # the checkpoint it saved on request
        return saved, at


@dataclass
class Metrics:
    """What one policy delivered on one trace (GPU-hours = node-seconds x GPUs per node / 3600)."""

    policy: str
    trace: str
    held_gpu_h: float = 0.0  # nodes held by attempts (incl. grace and start-up)
    useful_gpu_h: float = 0.0  # progress kept (completed, checkpointed, or running at the end)
    lost_gpu_h: float = 0.0  # lost to preemption: work since the last checkpoint, grace, restart start-up
    lost_by_reason: dict[str, float] = field(default_factory=dict)  # the same per suspend reason
    # why work was lost, per "<reason> <victim level> for <beneficiary level>": [suspensions, victim nodes,
    # GPU-h of work since the checkpoint (incl. grace), GPU-h of restart, summed checkpoint age at the request]
    losses: dict[str, list[float]] = field(default_factory=dict)
    startup_gpu_h: float = 0.0  # start-up of first attempts (not a preemption loss)
    submitted: int = 0
    completed: int = 0
    never_started: int = 0
    suspensions: int = 0
    time_share_suspensions: int = 0
    checkpoint_requests: int = 0  # checkpoints saved on the scheduler's request
    hours: float = 0.0
    allocation_when_full: float = 0.0  # mean share of nodes held over ticks where demand >= nodes
    full_ticks: int = 0
    quota_violations: int = 0  # (tick, user, level) where held nodes exceeded the quota
    waits: dict[str, list[float]] = field(default_factory=dict)  # priority name -> first-start waits (s)
    jain_normal: float = 1.0
    wall_seconds: float = 0.0
    plan_calls: int = 0
    series: dict[str, list[float]] = field(default_factory=dict)  # t (h), allocated, waiting nodes

    @property
    def lost_pct(self) -> float:
        return 100 * self.lost_gpu_h / self.held_gpu_h if self.held_gpu_h else 0.0

    def wait_stats(self, name: str) -> tuple[float, float, float]:
        """(mean, p95, max) in hours of first-start waits at a priority; jobs that never started count
        with their wait so far (a lower bound), so starving a job is never rewarded."""
        w = sorted(self.waits.get(name, ()))
        if not w:
            return (0.0, 0.0, 0.0)
        p95 = w[min(len(w) - 1, math.ceil(0.95 * len(w)) - 1)]
        return (statistics.fmean(w) / HOUR, p95 / HOUR, w[-1] / HOUR)

    def row(self) -> dict[str, Any]:
        n_mean, n_p95, n_max = self.wait_stats("NORMAL")
        h_mean, h_p95, h_max = self.wait_stats("HIGH")
        return {
            "policy": self.policy,
            "useful_gpu_h": round(self.useful_gpu_h),
            "lost_gpu_h": round(self.lost_gpu_h),
            "lost_pct": round(self.lost_pct, 1),
            "completed": self.completed,
            "never_started": self.never_started,
            "susp_per_h": round(self.suspensions / self.hours, 2) if self.hours else 0.0,
            "time_share": self.time_share_suspensions,
            "alloc_full_pct": round(100 * self.allocation_when_full, 1),
            "normal_wait_h": (round(n_mean, 2), round(n_p95, 1), round(n_max, 1)),
            "high_wait_h": (round(h_mean, 2), round(h_p95, 1), round(h_max, 1)),
            "jain_normal": round(self.jain_normal, 3),
            "quota_violations": self.quota_violations,
        }


class Simulation:
    """One policy on one trace. ``run()`` returns its ``Metrics``."""

    def __init__(
        self,
        trace: Trace,
        policy: Policy,
        *,
        tick: float = 60.0,
        grace: float = 60.0,
        restart_cost: float = 300.0,
        half_life: float | None = None,
        checkpoint_response: float = 120.0,
        record_series: bool = False,
        drain: float = 2 * DAY,
    ) -> None:
        self.trace = trace
        self.drain = drain
        self.policy = policy
        self.tick = tick
        self.grace = grace
        self.restart_cost = restart_cost
        # a job asked to checkpoint saves one this long after the request (math.inf: it ignores requests)
        self.checkpoint_response = checkpoint_response
        cfg = getattr(policy, "config", PolicyConfig())
        self.half_life = cfg.fairshare_half_life_seconds if half_life is None else half_life
        self.record_series = record_series
        per_room = math.ceil(trace.nodes / trace.rooms)
        self.nodes = tuple(Node(f"n{i:04d}", GROUP, f"r{i // per_room}") for i in range(trace.nodes))
        self.jobs = {str(j.job_id): _Job(j) for j in trace.jobs}
        self.waiting: dict[int, _Attempt] = {}
        self.running: dict[int, _Attempt] = {}
        self.next_attempt = 1
        self.usage: dict[str, float] = {}
        self.gpn = trace.gpus_per_node
        self.m = Metrics(policy.name, trace.name)

    def first_submit(self, chain_id: str) -> float:
        return self.jobs[chain_id].spec.submit

    def _gpu_h(self, node_seconds: float) -> float:
        return node_seconds * self.gpn / HOUR

    def _queue(self, job: _Job, now: float) -> None:
        a = _Attempt(self.next_attempt, job, queued_at=now)
        self.next_attempt += 1
        self.waiting[a.attempt_id] = a

    def _end_attempt(self, a: _Attempt, t: float, *, suspended: bool) -> None:
        """Account an attempt that frees its nodes at ``t`` (completed or suspended)."""
        del self.running[a.attempt_id]
        n = len(a.nodes)
        held = t - a.started_at
        a.job.ran += held
        rc = self.restart_cost
        startup = min(held, rc)
        m = self.m
        m.held_gpu_h += self._gpu_h(n * held)
        restart = a.job.attempts > 1  # its start-up is a restart caused by an earlier suspension
        if restart:
            self._lose(a.job.last_reason, n * startup)
            self._loss_detail(a.job.last_cause, 3, self._gpu_h(n * startup))
        else:
            m.startup_gpu_h += self._gpu_h(n * startup)
        if suspended:
            saved, _ = a.checkpoint_at(t, rc)
            m.useful_gpu_h += self._gpu_h(n * (saved - a.base))
            a.job.last_reason = a.reason.value if a.reason is not None else ""
            a.job.last_cause = (
                f"{a.job.last_reason} {Priority(a.priority).name} for "
                f"{Priority(a.victim_of).name if a.victim_of >= 0 else '-'}"
            )
            work_lost = self._gpu_h(n * (held - startup - (saved - a.base)))
            self._lose(a.job.last_reason, n * (held - startup - (saved - a.base)))
            self._loss_detail(a.job.last_cause, 0, 1)
            self._loss_detail(a.job.last_cause, 1, n)
            self._loss_detail(a.job.last_cause, 2, work_lost)
            self._loss_detail(a.job.last_cause, 4, a.ckpt_age)
            a.job.saved = saved
            self._queue(a.job, t)
        else:
            m.useful_gpu_h += self._gpu_h(n * (a.job.spec.work - a.base))
            a.job.saved = a.job.spec.work
            a.job.done_at = t

    def _loss_detail(self, cause: str, index: int, value: float) -> None:
        self.m.losses.setdefault(cause, [0.0] * 5)[index] += value

    def _lose(self, reason: str, node_seconds: float) -> None:
        gpu_h = self._gpu_h(node_seconds)
        self.m.lost_gpu_h += gpu_h
        self.m.lost_by_reason[reason] = self.m.lost_by_reason.get(reason, 0.0) + gpu_h

    def _snapshot(self, now: float) -> Snapshot:
        rc = self.restart_cost
        running = []
        for a in self.running.values():
            _, ckpt = a.checkpoint_at(now, rc)
            running.append(
                Running(
                    attempt_id=a.attempt_id,
                    chain_id=str(a.job.spec.job_id),
                    user=a.job.spec.user,
                    group=GROUP,
                    priority=a.priority,
                    quota_priority=a.quota_priority,
                    nodes=a.nodes,
                    started_at=a.started_at,
                    last_checkpoint_at=ckpt,
                    suspending=a.release_at is not None,
                    chain_ran_before=a.job.ran,
                    expected_end=a.expected_end,
                )
            )
        waiting = []
        for a in self.waiting.values():
            s = a.job.spec
            waiting.append(
                Waiting(
                    attempt_id=a.attempt_id,
                    chain_id=str(s.job_id),
                    user=s.user,
                    group=GROUP,
                    node_count=s.nodes,
                    priority=s.priority,
                    custom_rank=s.submit,
                    first_submitted_at=s.submit,
                    queued_at=a.queued_at,
                    chain_ran=a.job.ran,
                    claim=a.job.claim,
                    run_estimate=a.job.remaining_estimate(),
                )
            )
        usage = dict(self.usage)
        return Snapshot(now, self.nodes, tuple(running), tuple(waiting), self.trace.quotas, usage)

    def _apply(self, result: Plan, now: float) -> None:
        free = {n.name for n in self.nodes} - {name for a in self.running.values() for name in a.nodes}
        for d in result.demotions:
            a = self.running.get(d.attempt_id)
            if a is not None:
                a.priority = d.new_priority
        for s in result.suspends:
            a = self.running[s.attempt_id]
            if a.release_at is not None:
                raise AssertionError(f"policy {self.policy.name} suspended #{a.attempt_id} twice")
            a.release_at = now + self.grace
            a.reason = s.reason
            self.m.suspensions += 1
            beneficiary = self.waiting.get(s.beneficiary_attempt_id)
            a.victim_of = -1 if beneficiary is None else beneficiary.job.spec.priority
            _, ckpt = a.checkpoint_at(now, self.restart_cost)
            a.ckpt_age = now - (a.started_at if ckpt is None else ckpt)
            if beneficiary is not None:
                beneficiary.job.claim = True
            if s.reason is SuspendReason.TIME_SHARE:
                self.m.time_share_suspensions += 1
        for aid in result.checkpoint_requests:
            a = self.running[aid]
            at = now + self.checkpoint_response
            if a.release_at is None and math.isfinite(at) and (a.asked is None or a.asked[0] < now):
                a.asked = (at, a.progress_at(at, self.restart_cost))
                self.m.checkpoint_requests += 1
        for st in result.starts:
            a = self.waiting.pop(st.attempt_id)
            if len(st.nodes) != a.job.spec.nodes or not set(st.nodes) <= free:
                raise AssertionError(f"policy {self.policy.name} started #{a.attempt_id} on nodes not free")
            free -= set(st.nodes)
            a.nodes = st.nodes
            a.started_at = now
            est = a.job.remaining_estimate()
            a.expected_end = None if est is None else now + est
            a.quota_priority = st.priority
            a.priority = st.priority if st.effective_priority is None else st.effective_priority
            a.job.claim = False
            a.base = a.job.saved
            a.job.attempts += 1
            if a.job.first_start is None:
                a.job.first_start = now
            self.running[a.attempt_id] = a

    def _check_quota(self) -> None:
        held: dict[tuple[str, int], int] = {}
        for a in self.running.values():
            key = (a.job.spec.user, a.quota_priority)
            held[key] = held.get(key, 0) + len(a.nodes)
        for (user, level), n in held.items():
            if n > self.trace.quotas.get(user, {}).get((GROUP, level), 0):
                self.m.quota_violations += 1

    def run(self) -> Metrics:
        t0 = time.perf_counter()
        m = self.m
        tick = self.tick
        rc = self.restart_cost
        arrivals = sorted(self.trace.jobs, key=lambda j: (j.submit, j.job_id))
        ai = 0
        end = self.trace.duration + self.drain  # after the last arrival, run until all is done or this
        decay = 0.5 ** (tick / self.half_life) if self.half_life > 0 else 0.0
        capacity = len(self.nodes)
        now = 0.0
        while now <= end:
            if now > self.trace.duration and not self.running and not self.waiting:
                break
            changed = False
            # nodes freed since the last pass: completions and suspends whose grace is over
            for a in sorted(self.running.values(), key=lambda a: a.attempt_id):
                finish = a.started_at + rc + (a.job.spec.work - a.base)
                if a.release_at is not None and a.release_at <= now and a.release_at < finish:
                    self._end_attempt(a, a.release_at, suspended=True)
                    changed = True
                elif finish <= now:
                    self._end_attempt(a, finish, suspended=False)
                    changed = True
            while ai < len(arrivals) and arrivals[ai].submit <= now:
                self._queue(self.jobs[str(arrivals[ai].job_id)], arrivals[ai].submit)
                ai += 1
                changed = True
            if self.waiting or changed:
                result = self.policy.decide(self._snapshot(now), self)
                m.plan_calls += 1
                self._apply(result, now)
                self._check_quota()
            # usage (fair share), allocation, series
            for user in list(self.usage):
                self.usage[user] *= decay
            held_nodes = 0
            for a in self.running.values():
                n = len(a.nodes)
                held_nodes += n
                u = a.job.spec.user
                self.usage[u] = self.usage.get(u, 0.0) + n * tick
            demand = held_nodes + sum(a.job.spec.nodes for a in self.waiting.values())
            if demand >= capacity:
                m.full_ticks += 1
                m.allocation_when_full += held_nodes / capacity
            if self.record_series:
                s = m.series
                s.setdefault("t_h", []).append(now / HOUR)
                s.setdefault("allocated", []).append(held_nodes / capacity)
                s.setdefault("waiting_nodes", []).append(sum(a.job.spec.nodes for a in self.waiting.values()))
            now += tick
        # the end: running attempts keep what they did so far
        now -= tick
        for a in list(self.running.values()):
            n = len(a.nodes)
            held = now - a.started_at
            startup = min(held, rc)
            m.held_gpu_h += self._gpu_h(n * held)
            if a.job.attempts > 1:
                self._lose(a.job.last_reason, n * startup)
                self._loss_detail(a.job.last_cause, 3, self._gpu_h(n * startup))
            else:
                m.startup_gpu_h += self._gpu_h(n * startup)
            m.useful_gpu_h += self._gpu_h(n * (a.progress_at(now, rc) - a.base))
        m.allocation_when_full = m.allocation_when_full / m.full_ticks if m.full_ticks else 1.0
        m.hours = now / HOUR
        m.submitted = ai
        self._job_metrics(now)
        m.wall_seconds = time.perf_counter() - t0
        return m

    def _job_metrics(self, now: float) -> None:
        m = self.m
        service: dict[str, list[float]] = {}  # NORMAL users: [useful node-s, demanded node-s]
        for job in self.jobs.values():
            s = job.spec
            if s.submit > now:
                continue
            name = Priority(s.priority).name
            if job.done_at is not None:
                m.completed += 1
            if job.first_start is None:
                m.never_started += 1
                wait = now - s.submit
            else:
                wait = job.first_start - s.submit
            m.waits.setdefault(name, []).append(wait)
            if s.priority == P.NORMAL:
                got = job.saved
                for a in self.running.values():
                    if a.job is job:
                        got = a.progress_at(now, self.restart_cost)
                acc = service.setdefault(s.user, [0.0, 0.0])
                acc[0] += s.nodes * got
                acc[1] += s.nodes * s.work
        shares = [got / want for got, want in service.values() if want > 0]
        if shares:
            m.jain_normal = sum(shares) ** 2 / (len(shares) * sum(x * x for x in shares)) if any(shares) else 1.0


def simulate(trace: Trace, policy: Policy, **kwargs: Any) -> Metrics:
    return Simulation(trace, policy, **kwargs).run()


# --------------------------------------------------------------------------------------------------
# Output

COLUMNS = (
    ("policy", "policy", "{:<22}"),
    ("useful_gpu_h", "useful GPU-h", "{:>12,}"),
    ("lost_gpu_h", "lost GPU-h", "{:>10,}"),
    ("lost_pct", "lost %", "{:>6}"),
    ("completed", "done", "{:>5}"),
    ("never_started", "never", "{:>5}"),
    ("susp_per_h", "susp/h", "{:>6}"),
    ("time_share", "TS", "{:>4}"),
    ("alloc_full_pct", "alloc%", "{:>6}"),
    ("normal_wait_h", "NORMAL wait h mean/p95/max", "{:>26}"),
    ("high_wait_h", "HIGH wait h mean/p95/max", "{:>24}"),
    ("jain_normal", "Jain", "{:>5}"),
    ("quota_violations", "quota!", "{:>6}"),
)


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, tuple):
        value = " / ".join(str(v) for v in value)
        fmt = fmt.replace(",", "")
    return fmt.format(value)


def print_table(results: Sequence[Metrics]) -> None:
    print("  ".join(_cell(title, fmt.replace(",", "")) for _, title, fmt in COLUMNS))
    for r in results:
        row = r.row()
        print("  ".join(_cell(row[key], fmt) for key, _, fmt in COLUMNS))


def markdown_table(results: Sequence[Metrics]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        row = r.row()
        cells = [
            " / ".join(str(v) for v in row[k])
            if isinstance(row[k], tuple)
            else f"{row[k]:,}"
            if isinstance(row[k], int)
            else str(row[k])
            for k, _, _ in COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_losses(result: Metrics) -> None:
    """Where one policy's preemption losses come from: per suspend reason, victim level and the level of
    the job it was suspended for, the suspensions, their nodes, the GPU-hours of work since the victim's
    checkpoint (grace included) and of restarts, and the mean checkpoint age at the request."""
    print(
        f"  losses of {result.policy}: cause, suspensions, victim nodes, work lost GPU-h, restart GPU-h, "
        "mean ckpt age min"
    )
    for cause, (count, nodes, work, _, age) in sorted(result.losses.items(), key=lambda kv: -(kv[1][2] + kv[1][3])):
        restart = result.losses[cause][3]
        print(f"    {cause:<40} {count:5.0f} {nodes:6.0f} {work:9.0f} {restart:9.0f} {age / max(count, 1) / 60:7.1f}")


def draw_charts(results: Sequence[Metrics], prefix: Path) -> list[Path]:
    """Allocation and waiting demand over time, and the CDF of first-start waits, per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix.parent.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for r in results:
        s = r.series
        ax1.plot(s["t_h"], [100 * x for x in s["allocated"]], label=r.policy, linewidth=0.8)
        ax2.plot(s["t_h"], s["waiting_nodes"], label=r.policy, linewidth=0.8)
    ax1.set_ylabel("nodes allocated (%)")
    ax2.set_ylabel("nodes asked by waiting jobs")
    ax2.set_xlabel("hours")
    ax1.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path = prefix.with_name(prefix.name + "-allocation.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    out.append(path)
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        w = sorted(x / HOUR for ws in r.waits.values() for x in ws)
        if w:
            ax.plot(w, [(i + 1) / len(w) for i in range(len(w))], label=r.policy, linewidth=1)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("first-start wait (hours, all priorities)")
    ax.set_ylabel("share of jobs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = prefix.with_name(prefix.name + "-wait-cdf.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, action="append", help="synthetic trace seed (repeatable; default 1)")
    parser.add_argument("--trace", type=Path, help="replay a CSV trace instead (columns: " + ",".join(CSV_FIELDS) + ")")
    parser.add_argument("--write-trace", type=Path, help="write the (first) synthetic trace to this CSV and stop")
    parser.add_argument(
        "--policy", action="append", help=f"policy to run (repeatable; default all: {', '.join(POLICIES)})"
    )
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--load", type=float, default=1.5)
    parser.add_argument("--charts", type=Path, help="write PNG charts with this path prefix (first trace)")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables too")
    parser.add_argument(
        "--checkpoint-response",
        type=float,
        default=120.0,
        help="seconds a job takes to save a checkpoint the scheduler asked for (inf: jobs ignore requests)",
    )
    parser.add_argument(
        "--estimates",
        choices=ESTIMATE_MODES,
        default="user",
        help="run-time estimates of the synthetic trace: user (most jobs, noisy; default), exact, none",
    )
    parser.add_argument("--losses", action="store_true", help="print where each policy's preemption losses come from")
    args = parser.parse_args(argv)

    if args.trace is not None:
        traces = [read_trace(args.trace)]
    else:
        traces = [
            synthetic_trace(s, days=args.days, load=args.load, estimates=args.estimates) for s in (args.seed or [1])
        ]
    if args.write_trace is not None:
        write_trace(traces[0], args.write_trace)
        print(f"wrote {len(traces[0].jobs)} jobs to {args.write_trace}")
        return 0
    for i, trace in enumerate(traces):
        demand = sum(j.nodes * j.work for j in trace.jobs) / (trace.nodes * trace.duration)
        print(
            f"\n{trace.name}: {len(trace.jobs)} jobs, {len(trace.quotas)} users, {trace.nodes} nodes x "
            f"{trace.gpus_per_node} GPUs, {trace.duration / HOUR:.0f} h, offered work {demand:.2f}x capacity"
        )
        results = []
        for pol in policies(args.policy):
            results.append(
                simulate(
                    trace,
                    pol,
                    record_series=args.charts is not None and i == 0,
                    checkpoint_response=args.checkpoint_response,
                )
            )
        print_table(results)
        if args.losses:
            for r in results:
                print_losses(r)
        print("  (wall seconds: " + ", ".join(f"{r.policy} {r.wall_seconds:.1f}" for r in results) + ")")
        if args.markdown:
            print()
            print(markdown_table(results))
        if args.charts is not None and i == 0:
            for path in draw_charts(results, args.charts):
                print(f"chart: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
