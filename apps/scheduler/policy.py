"""Rota's scheduling policy: one pure pass from a snapshot of the cluster to decisions.

``plan(snapshot)`` is a function of plain data: the nodes, the running attempts (with the nodes they
hold), the waiting attempts, the users' resolved quotas and decayed usage, and the policy settings.
It never touches the database; ``apps/scheduler/driver.py`` loads the snapshot, calls ``plan`` and
applies the returned ``Plan`` in one transaction. The user-facing description is docs/scheduler.md.

A pass works in this order:

1. **Index.** Nodes are grouped; a node is *free* when it is schedulable and no running attempt
   holds it. ABOVE_NORMAL runners past ``above_normal_aging_seconds`` are demoted to NORMAL first,
   so every later rule sees their effective priority. Runners already ``suspending`` keep their
   nodes, which count as *becoming free*. Quota use per (user, group, level) is charged from the
   runners' ``quota_priority``.
2. **Feasibility.** A waiting attempt that can never run (unknown group, bigger than its group,
   above its quota ceiling, bad environment) is reported ``infeasible`` and takes part in nothing.
3. **AUTO** is resolved per (user, group), in the user's own order, to the highest level whose
   quota left (after runners and the user's earlier AUTO attempts) fits the node count.
4. **Order.** Each group is independent (nodes, quota keys and victims never cross groups). Its
   waiting attempts are sorted by priority desc, usage asc, custom_rank, first submission, id.
5. **Walk the queue once.** For each attempt, in order: quota check; start on free nodes (best-fit
   room); else claim nodes that are becoming free; else suspend the fewest, cheapest victims
   (strictly lower priority, then the time-share rule); else explain why it waits. An attempt
   waiting for suspends holds the free nodes it will use, as a *count* later attempts cannot start
   on; so does the first long-waiting blocked attempt (the group's reservation), after which nobody
   behind it starts or suspends in that group. Everything else is backfill: later attempts start on
   whatever idle nodes are left.

Everything is sorted before it is iterated, so the same input gives the same ``Plan`` whatever the
order of the input tuples. The pass is O(W log W + R log R) for W waiting and R running attempts:
capacities are kept as per-group counters, victim lists are sorted once, and the explanations of the
many attempts blocked behind a full group share cached holder tuples.
"""

from __future__ import annotations

import bisect
import enum
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

# The levels and the infeasibility rule the submit service shares (a pure module below this one).
from apps.experiments.feasibility import LEVELS, InfeasibleCode, Priority, infeasibility

# --------------------------------------------------------------------------------------------------
# Public data


class SuspendReason(enum.StrEnum):
    PREEMPTED = "PREEMPTED"  # a strictly higher-priority attempt needs the nodes
    TIME_SHARE = "TIME_SHARE"  # an equal-priority attempt of another user gets its turn
    OVER_QUOTA = "OVER_QUOTA"  # its owner's quota was lowered below what their jobs hold


class ReasonCode(enum.StrEnum):
    """Why a waiting attempt did not start in this pass (see docs/scheduler.md)."""

    # infeasible: can never start as submitted
    GROUP_TOO_SMALL = "GROUP_TOO_SMALL"
    QUOTA_CEILING = "QUOTA_CEILING"
    ENVIRONMENT = "ENVIRONMENT"
    INFEASIBLE = "INFEASIBLE"
    # waiting
    QUOTA = "QUOTA"
    PRIORITY = "PRIORITY"
    NO_NODES = "NO_NODES"
    FRAGMENTATION = "FRAGMENTATION"
    RESERVED = "RESERVED"
    MIN_RUNTIME = "MIN_RUNTIME"
    TIME_SLICE = "TIME_SLICE"
    WAITING_FOR_SUSPEND = "WAITING_FOR_SUSPEND"
    CHECKPOINT = "CHECKPOINT"
    PREEMPT_WAIT = "PREEMPT_WAIT"  # a non-urgent attempt lets nodes free up on their own before suspending


INFEASIBLE_CODES: frozenset[ReasonCode] = frozenset(ReasonCode(code) for code in InfeasibleCode)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's settings; docs/scheduling-quality.md gives the reason and the evidence for each default."""

    min_run_seconds: float = 900  # a victim must have run this long in its current attempt (anti-thrash)
    time_slice_seconds: float = 6 * 3600  # an equal-priority runner may be time-shared after this
    timeshare_wait_seconds: float = 900  # ... if another user's equal-priority attempt has waited this long
    above_normal_aging_seconds: float = 1800  # ABOVE_NORMAL whose chain ran this long ages to NORMAL
    fairshare_half_life_seconds: float = 3600  # used by the driver to decay usage; kept here for docs
    reservation_wait_seconds: float = 1800  # an attempt waiting this long gets a reservation (anti-starvation)
    reservation_hold_seconds: float = 1800  # ... which keeps idle nodes only if it can start within this
    # Suspend where it pays. A victim costs nodes x (work since its last checkpoint + restart_cost_seconds).
    # Waiters below urgent_priority (and time-sharing) suspend only victims that checkpointed in the last
    # checkpoint_fresh_seconds, or whose last checkpoint is checkpoint_wait_seconds old (they wait no longer).
    restart_cost_seconds: float = 300
    preempt_wait_seconds: float = 900  # a non-urgent waiter suspends nobody before it has waited this long
    urgent_priority: int = 30  # HIGH and above preempt at once (cheapest victims)
    checkpoint_fresh_seconds: float = 60
    checkpoint_wait_seconds: float = 1800
    timeshare_max_ratio: float = 2.0  # a time-share victim holds at most this many times the nodes needed
    victim_wait_seconds: float = 600  # wait this long for a lower-priority victim, not suspend a higher one now
    # Ask the stale victims a non-urgent waiter is waiting for to checkpoint now (``rota.job.checkpoint_requested``)
    # rather than waiting for their own schedule; they are suspended right after they report it.
    request_checkpoints: bool = True
    starvation_seconds: float = 6 * 3600  # waiting this long, an attempt goes ahead of fair share in its level
    # Run-time estimates (``Waiting.run_estimate``, ``Running.expected_end``). ``use_estimates``: among attempts
    # past ``starvation_seconds`` the smallest estimated nodes x seconds goes first (unknown ones after them).
    # ``estimate_backfill``: a reservation's start time also counts the runners' expected ends, and jobs behind
    # it may use its idle nodes when they are expected to be done before then, or (``backfill_suspendable``) are
    # at a lower level and will have run ``min_run_seconds`` by then, so that it can suspend them.
    use_estimates: bool = True
    estimate_backfill: bool = False
    backfill_suspendable: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    group: str
    room: str = ""
    schedulable: bool = True  # False = not ready or disabled: counts toward the group's size, never used


@dataclass(frozen=True, slots=True)
class Running:
    attempt_id: int
    chain_id: str
    user: str
    group: str
    priority: int  # effective priority now (already demoted if it aged in an earlier pass)
    quota_priority: int  # the level whose quota it is charged to (aging does not move it)
    nodes: tuple[str, ...]  # nodes still held (finished ranks' nodes already removed by the driver)
    started_at: float  # epoch seconds, start of this attempt
    last_checkpoint_at: float | None = None
    suspending: bool = False  # a suspend was already requested; nodes still held until it ends
    chain_ran_before: float = 0.0  # seconds the chain's earlier attempts ran (aging counts the chain)
    expected_end: float | None = None  # epoch time its owner's run-time estimate says it ends; None = unknown


@dataclass(frozen=True, slots=True)
class Waiting:
    attempt_id: int
    chain_id: str
    user: str
    group: str
    node_count: int
    priority: int  # requested; Priority.AUTO means "highest level with quota left"
    custom_rank: float  # user-set order within their own jobs; default = first_submitted_at
    first_submitted_at: float  # the chain's first submission (FIFO)
    queued_at: float  # when this attempt started waiting
    environment_ok: bool = True  # False: unknown or not permitted image (infeasible)
    chain_ran: float = 0.0  # seconds the chain's earlier attempts ran: an aged ABOVE_NORMAL chain queues at NORMAL
    claim: bool = False  # jobs were suspended for it: it goes first to the nodes they free
    # seconds it is expected to run once started (its owner's estimate less what the chain already ran); None =
    # unknown. Used to backfill in front of a reservation and to order jobs past ``starvation_seconds``.
    run_estimate: float | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    nodes: tuple[Node, ...]
    running: tuple[Running, ...]
    waiting: tuple[Waiting, ...]
    # user -> (group, level) -> max nodes held at once, already resolved by the driver
    quotas: Mapping[str, Mapping[tuple[str, int], int]]
    usage: Mapping[str, float]  # user -> decayed recent usage (node-seconds), for fair share
    config: PolicyConfig = PolicyConfig()


class Start(NamedTuple):
    """Start ``attempt_id`` on ``nodes``. Named tuples, as ``Suspend``, ``Holder`` and ``Explanation``: a pass
    may decide thousands of them, and ``tuple.__new__`` builds one in a single C call (see "Fast constructors")."""

    attempt_id: int
    nodes: tuple[str, ...]  # index = rank
    priority: int  # the resolved level (never AUTO); also the quota level it is charged to
    effective_priority: int | None = None  # runs at this lower level (its chain aged); None = ``priority``


class Suspend(NamedTuple):
    """Ask ``attempt_id`` to suspend (a named tuple, as ``Start``)."""

    attempt_id: int  # the victim
    reason: SuspendReason
    beneficiary_attempt_id: int  # 0 = nobody (OVER_QUOTA)


@dataclass(frozen=True, slots=True)
class Demotion:
    attempt_id: int
    new_priority: int


@dataclass(frozen=True, slots=True)
class Infeasible:
    attempt_id: int
    code: ReasonCode
    message: str


class Holder(NamedTuple):
    """An attempt holding (or about to hold) what a waiting attempt needs.

    A named tuple rather than a frozen dataclass like the rest of the plan: a pass builds one per running
    attempt, and ``_holder`` builds a tuple in one C call (see "Fast constructors" below)."""

    attempt_id: int
    user: str
    nodes: int
    priority: int


class Explanation(NamedTuple):
    """Why a waiting attempt did not start. A named tuple for the same reason as ``Holder``: one per waiting
    attempt (10,000 in the benchmark), built by ``_explain``."""

    attempt_id: int
    code: ReasonCode
    message: str  # English, specific; the portal and CLI show it as is
    position: int  # 1-based place among the group's attempts still waiting after this pass; 0 = infeasible
    holders: tuple[Holder, ...]  # most relevant first, at most MAX_HOLDERS
    resolved_priority: int | None  # the level it is queued at; None when AUTO found no level
    eta: float | None = None  # MIN_RUNTIME / TIME_SLICE: earliest epoch time it may suspend its way in


@dataclass(frozen=True, slots=True)
class Reservation:
    """Anti-starvation: idle and being-freed nodes of ``group`` held for a long-waiting attempt."""

    attempt_id: int
    group: str
    free_nodes: int  # idle nodes held now (later attempts may not start on them)
    freeing_nodes: int  # nodes of suspending attempts held for it
    start_at: float | None = None  # when its job is expected to be able to start; None = not known


@dataclass(frozen=True, slots=True)
class Plan:
    starts: tuple[Start, ...]
    suspends: tuple[Suspend, ...]
    demotions: tuple[Demotion, ...]
    keeps: tuple[int, ...]  # every running attempt not suspended now (incl. those already suspending)
    infeasible: tuple[Infeasible, ...]
    explanations: Mapping[int, Explanation]  # every waiting attempt that does not start (infeasible too)
    reservations: tuple[Reservation, ...] = ()  # at most one per group
    # running attempts asked to save a checkpoint soon: a waiting attempt will suspend them once they have
    checkpoint_requests: tuple[int, ...] = ()


MAX_HOLDERS = 5


# --------------------------------------------------------------------------------------------------
# Fast constructors (a speed trick, kept here and nowhere else)
#
# A pass builds one ``Explanation`` per waiting attempt (10,000 in the benchmark), one ``Holder`` per
# running attempt, and a ``Start`` or ``Suspend`` per decision (over a thousand in the benchmark). All
# four are named tuples, so ``_build(cls, fields)`` (``tuple.__new__``) makes one in a single C call,
# skipping the Python-level ``__new__`` that ``collections.namedtuple`` generates (which only fills in
# defaults); a frozen dataclass, as these were, costs three to five times as much to build (its
# ``__init__`` writes each field through ``object.__setattr__``). What it returns is exactly what
# ``Explanation(...)`` etc. return (same type, equal, same hash and ``repr``;
# ``test_fast_constructors_build_what_the_named_tuples_build`` checks it), provided every field is
# passed, defaults included: add a field to one of these classes and its ``_build`` calls (and
# ``_explain``, ``_holder``) must follow.

_build: Any = tuple.__new__


def _holder(attempt_id: int, user: str, nodes: int, priority: int, _new: Any = _build) -> Holder:
    """``Holder(...)`` in one C call (one per running attempt per pass)."""
    h: Holder = _new(Holder, (attempt_id, user, nodes, priority))
    return h


def _explain(
    attempt_id: int,
    code: ReasonCode,
    message: str,
    position: int,
    holders: tuple[Holder, ...],
    resolved_priority: int | None,
    eta: float | None = None,
    _new: Any = _build,
) -> Explanation:
    """``Explanation(...)`` in one C call (one per waiting attempt per pass)."""
    e: Explanation = _new(Explanation, (attempt_id, code, message, position, holders, resolved_priority, eta))
    return e


# --------------------------------------------------------------------------------------------------
# Names and messages


_NAMES: dict[int, str] = {p.value: p.name for p in Priority}
_LEVEL_SET = frozenset(LEVELS)
_NORMAL = int(Priority.NORMAL)
_ABOVE_NORMAL = int(Priority.ABOVE_NORMAL)
_AUTO = int(Priority.AUTO)
_PREEMPTED = SuspendReason.PREEMPTED
_TIME_SHARE = SuspendReason.TIME_SHARE
_OVER_QUOTA = SuspendReason.OVER_QUOTA
_WAITING_FOR_SUSPEND = ReasonCode.WAITING_FOR_SUSPEND


# The fair-share key of an attempt waiting past starvation_seconds: ahead of any usage (>= 0), smallest estimated
# nodes x seconds first (exact below 1e12 node-seconds), then those without an estimate.
_STARVING = -1e15
_STARVING_UNKNOWN = _STARVING + 1e14
_CLAIM = 100  # a claimant's sort key is -level - _CLAIM: before every level
_LEVEL_KEY = 1 << 32  # level x _LEVEL_KEY + node count: one int per (level, node count), as no group has 2^32 nodes


#: One waiting attempt in its group's queue; the queue sorts these tuples field by field:
#: (rank, share, place, attempt_id, waiting) --
#: rank: -level, or -level - _CLAIM for a claimant (jobs were suspended for it): before every level;
#: share: decayed usage of its user (fair share); below 0 past starvation_seconds (``starving_key``);
#: place: first submission (FIFO); ``custom_rank`` swaps places among one user's own jobs;
#: attempt_id: unique, so ``waiting`` is never compared.
#: A plain tuple, read by index: a pass builds one per waiting attempt, and a tuple display costs about a
#: fifth of building a named tuple (even through ``tuple.__new__``, which copies a temporary tuple into the
#: subclass instance); named tuples compare as plain tuples, so the order is the same.
_Entry = tuple[int, float, float, int, Waiting]


# sort keys that C computes (the sorts of a pass mostly use these, not lambdas)
_place_of = operator.itemgetter(2)  # an entry's place


def _first_entry(owned: tuple[tuple[str, str, int], list[_Entry]]) -> _Entry:
    return owned[1][0]


_name_of = operator.attrgetter("name")
_id_of = operator.attrgetter("attempt_id")
_user_order = operator.attrgetter("custom_rank", "first_submitted_at", "attempt_id")  # a user's own order


def priority_name(priority: int) -> str:
    return _NAMES.get(priority, str(priority))


def format_duration(seconds: float) -> str:
    """``95`` -> ``"1m 35s"``; rounded up so that "in 0s" never appears for a future time."""
    s = max(0, math.ceil(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_NODE_WORDS: dict[int, str] = {k: _plural(k, "node") for k in range(129)}


def _nodes(n: int) -> str:
    """``"1 node"``, ``"3 nodes"``."""
    words = _NODE_WORDS.get(n)
    return _plural(n, "node") if words is None else words


def _ids(holders: Iterable[Holder]) -> str:
    return ", ".join(f"#{h.attempt_id}" for h in holders)


def _named(holders: Iterable[Holder]) -> str:
    """``"#2 (LOW), #5 (NORMAL)"``."""
    return ", ".join(f"#{h.attempt_id} ({_NAMES.get(h.priority, h.priority)})" for h in holders)


def _hid(h: Holder) -> int:
    return h.attempt_id


def _priority_of(r: _Runner) -> int:
    return r.priority


# --------------------------------------------------------------------------------------------------
# Working state of one pass


class _Runner:
    __slots__ = (
        "attempt_id",
        "booked",
        "checkpoint_at",
        "cost",
        "fresh",
        "holder",
        "listed",
        "priority",
        "slice_over",
        "started_at",
        "taken",
        "ts_eligible",
        "usage",
        "user",
        "value",
    )

    def __init__(self, r: Running, priority: int, value: int, usage: float) -> None:
        self.attempt_id = r.attempt_id
        self.user = r.user
        self.priority = priority
        self.value = value  # schedulable nodes of its group that it holds: what suspending it frees
        self.started_at = r.started_at
        self.checkpoint_at = r.started_at if r.last_checkpoint_at is None else r.last_checkpoint_at
        self.cost = 0.0  # node-seconds lost if suspended now (nodes x (since checkpoint + restart))
        self.fresh = True  # a non-urgent suspend may take it now (checkpoint just saved, or overdue)
        self.slice_over = False  # ran a whole time slice
        self.usage = usage
        self.taken = False  # chosen as a victim in this pass
        self.booked = False  # counted in a MIN_RUNTIME / TIME_SLICE estimate of an attempt ahead
        self.ts_eligible = False
        self.listed = False  # appears in a cached tuple of holders
        self.holder = _build(Holder, (r.attempt_id, r.user, len(r.nodes), priority))  # ``_holder`` inlined


class _Room:
    __slots__ = ("free", "name", "names", "pos")

    def __init__(self, name: str) -> None:
        self.name = name
        self.names: list[str] = []  # free nodes sorted by name; names[pos:] are still free
        self.pos = 0
        self.free = 0


class _Group:
    """Counters and sorted lists for one node group; every count is in nodes."""

    __slots__ = (
        "becoming",
        "becoming_pos",
        "becoming_total",
        "blocked_cache",
        "by_priority",
        "ckpt_cache",
        "claimed_free",
        "claimers",
        "ends",
        "equal",
        "equal_now",
        "equal_pos",
        "exhausted",
        "free",
        "fresh_by_level",
        "fresh_cap_cache",
        "held_at",
        "idle0",
        "lower",
        "lower_by_level",
        "lower_cap_cache",
        "lower_fresh",
        "lower_fresh_pos",
        "lower_pos",
        "message_cache",
        "name",
        "overdue",
        "position",
        "prio_holders_cache",
        "reserve_holds",
        "reserved_becoming",
        "reserved_free",
        "reserver",
        "reserver_holder",
        "rooms",
        "schedulable",
        "shadow",
        "size",
        "soon_cache",
        "soon_pos",
        "stale",
        "stale_pos",
        "starters",
        "ts",
        "ts_nodes",
        "ts_user",
        "young",
        "young_cache",
        "young_pos",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0  # registered nodes, schedulable or not
        self.schedulable = 0
        self.rooms: list[_Room] = []
        self.idle0 = 0  # free nodes at the start of the pass
        self.free = 0  # free nodes nobody started on yet (claims and the reservation are counted apart)
        self.claimed_free = 0  # free nodes held for attempts waiting for suspends
        self.reserved_free = 0  # free nodes held for the starving attempt
        self.reserved_becoming = 0
        self.reserver: Waiting | None = None
        self.reserver_holder: Holder | None = None
        self.reserve_holds = True  # the reservation keeps idle nodes (it can start soon)
        self.shadow: float | None = None  # when the reservation's job is expected to be able to start
        self.ends: list[tuple[float, _Runner]] = []  # runners with a run-time estimate: (expected end, runner)
        self.ckpt_cache: dict[tuple[int, int, bool], tuple[list[_Runner], float] | None] = {}
        self.overdue = 0.0  # checkpoint_wait_seconds
        # nodes of suspending attempts nobody has claimed yet: [runner, nodes left] in claim order
        self.becoming: list[list] = []
        self.becoming_pos = 0
        self.becoming_total = 0
        # victims: every runner that may be suspended now, in "least work lost" order
        self.lower: list[_Runner] = []
        self.lower_pos = 0
        self.lower_fresh: list[_Runner] = []  # the fresh ones: what a non-urgent waiter may take now
        self.lower_fresh_pos = 0
        self.stale: list[_Runner] = []  # eligible but not fresh, soonest overdue first (for explanations)
        self.stale_pos = 0
        self.lower_by_level: dict[int, int] = {}
        self.lower_cap_cache: dict[int, int] = {}
        self.fresh_by_level: dict[int, int] = {}  # the same, counting only victims a non-urgent waiter may take
        self.fresh_cap_cache: dict[int, int] = {}
        # time-share candidates per priority, in round-robin order (highest usage, longest running)
        self.ts: dict[int, list[_Runner]] = {}
        self.ts_nodes: dict[int, int] = {}
        self.ts_user: dict[tuple[int, str], int] = {}
        # for MIN_RUNTIME / TIME_SLICE estimates
        self.young: list[tuple[float, int, _Runner]] = []  # (may be suspended from, priority, runner)
        self.young_cache: dict[int, list[tuple[float, _Runner]]] = {}
        self.young_pos: dict[int, int] = {}
        self.soon_cache: dict[int, list[tuple[float, _Runner]]] = {}  # for ``cheaper_soon``, per top victim level
        self.soon_pos: dict[int, int] = {}
        self.equal: dict[int, list[tuple[float, _Runner]]] = {}  # priority -> (slice ends, runner)
        self.equal_pos: dict[int, int] = {}
        self.equal_now: dict[int, int] = {}  # priority -> index of the first runner whose slice is not over
        # for messages
        self.by_priority: list[_Runner] = []  # not suspending, highest priority first
        self.held_at: dict[int, int] = {}  # priority -> schedulable nodes held at that priority
        self.prio_holders_cache: dict[int, tuple[Holder, ...]] = {}
        self.message_cache: dict[tuple[int, int, int, int], str] = {}
        # level x _LEVEL_KEY + node count -> (code, message, holders) of a user-independent "blocked"; emptied on
        # any change (an int key: looked up once per waiting attempt, and cheaper than a (level, n) tuple)
        self.blocked_cache: dict[int, tuple[ReasonCode, str, tuple[Holder, ...]]] = {}
        self.exhausted: dict[int, bool] = {}  # priority -> no runner left to book for an estimate
        self.starters: list[Holder] = []  # attempts that started on free nodes in this pass
        self.claimers: list[Holder] = []  # attempts holding free nodes while they wait for suspends
        self.position = 0

    # ---- capacity ------------------------------------------------------------------------------

    def lower_cap(self, priority: int, fresh_only: bool = False) -> int:
        """Nodes freed by suspending every eligible runner strictly below ``priority`` (``fresh_only``:
        only those a non-urgent waiter may suspend now)."""
        cache = self.fresh_cap_cache if fresh_only else self.lower_cap_cache
        cap = cache.get(priority)
        if cap is None:
            cap = 0
            for level, nodes in (self.fresh_by_level if fresh_only else self.lower_by_level).items():
                if level < priority:
                    cap += nodes
            cache[priority] = cap
        return cap

    def take_nodes(self, n: int) -> tuple[str, ...]:
        """Pick ``n`` free nodes: the fullest-fitting single room, else the fewest rooms."""
        self.blocked_cache.clear()
        best: _Room | None = None
        for room in self.rooms:
            if room.free >= n and (best is None or room.free < best.free):
                best = room
        if best is not None:
            chosen = best.names[best.pos : best.pos + n]
            best.pos += n
            best.free -= n
        else:
            chosen = []
            for room in sorted(self.rooms, key=lambda r: (-r.free, r.name)):
                k = min(room.free, n - len(chosen))
                if k <= 0:
                    continue
                chosen.extend(room.names[room.pos : room.pos + k])
                room.pos += k
                room.free -= k
                if len(chosen) == n:
                    break
        self.free -= n
        return tuple(chosen)

    def claim_becoming(self, n: int) -> list[_Runner]:
        """Take ``n`` nodes from the becoming-free pool; returns the runners they come from."""
        got: list[_Runner] = []
        becoming = self.becoming
        while n > 0:
            entry = becoming[self.becoming_pos]
            k = min(entry[1], n)
            entry[1] -= k
            n -= k
            self.becoming_total -= k
            got.append(entry[0])
            if entry[1] == 0:
                self.becoming_pos += 1
        return got

    def mark_taken(self, r: _Runner) -> None:
        r.taken = True
        if self.ckpt_cache:
            self.ckpt_cache.clear()
        self.lower_by_level[r.priority] -= r.value
        if r.ts_eligible:
            self.ts_nodes[r.priority] -= r.value
            self.ts_user[(r.priority, r.user)] -= r.value
        for level in self.lower_cap_cache:
            if level > r.priority:
                self.lower_cap_cache[level] -= r.value
        if r.fresh:
            self.fresh_by_level[r.priority] -= r.value
            for level in self.fresh_cap_cache:
                if level > r.priority:
                    self.fresh_cap_cache[level] -= r.value
        if r.listed:
            self.prio_holders_cache.clear()

    # ---- victims ---------------------------------------------------------------------------------

    def select_victims(
        self,
        priority: int,
        user: str,
        need: int,
        time_share: bool,
        urgent: bool,
        max_ratio: float,
        usage: float = -math.inf,
    ) -> list[tuple[_Runner, SuspendReason]] | None:
        """The cheapest victims freeing ``need`` nodes, or None when impossible now.

        Strictly lower priorities first, lowest level first and cheapest (nodes x work since the last
        checkpoint + restart) within a level, then (if allowed) equal-priority runners of other users
        in round-robin order, none holding more than ``max_ratio`` x ``need`` nodes and none of a user
        whose decayed usage is below ``usage`` (the waiter's user's: turns go to who had less). A non-urgent waiter
        only takes *fresh* victims. A pass then drops, most expensive first, every victim the others
        already cover; finally one cheaper runner that frees ``need`` alone replaces the set.
        """
        chosen: list[tuple[_Runner, SuspendReason]] = []
        total = 0
        if urgent:
            lower = self.lower
            i = self.lower_pos
            while i < len(lower) and lower[i].taken:
                i += 1
            self.lower_pos = i
        else:
            lower = self.lower_fresh
            i = self.lower_fresh_pos
            while i < len(lower) and lower[i].taken:
                i += 1
            self.lower_fresh_pos = i
        start = i
        while total < need and i < len(lower):
            r = lower[i]
            i += 1
            if r.priority >= priority:
                break
            if not r.taken:
                chosen.append((r, _PREEMPTED))
                total += r.value
        if total < need and time_share:
            limit = max_ratio * need
            for r in self.ts.get(priority, ()):  # heaviest users first
                if r.usage < usage:
                    break
                if r.taken or r.user == user or r.value > limit:
                    continue
                chosen.append((r, _TIME_SHARE))
                total += r.value
                if total >= need:
                    break
        if total < need:
            return None
        keep = [True] * len(chosen)
        for k in range(len(chosen) - 1, -1, -1):
            value = chosen[k][0].value
            if total - value >= need:
                total -= value
                keep[k] = False
        victims = [c for c, kept in zip(chosen, keep, strict=True) if kept]
        if len(victims) > 1 or victims[0][0].value > need:
            limit = sum(r.cost for r, _ in victims)
            top = min(max(r.priority for r, _ in victims), priority - 1)
            best: _Runner | None = None
            i, end = start, len(lower)
            while i < end:  # the cheapest runner freeing ``need`` alone, cheaper than the set
                r = lower[i]
                level = r.priority
                if level > top:
                    break
                if r.cost >= limit:  # the rest of this level costs more (sorted by cost within a level)
                    i = bisect.bisect_right(lower, level, lo=i, key=_priority_of)
                    continue
                if not r.taken and r.value >= need:
                    best, limit = r, r.cost
                i += 1
            if best is not None:
                victims = [(best, _PREEMPTED)]
        return victims

    def cheaper_soon(
        self, victims: list[tuple[_Runner, SuspendReason]], need: int, now: float, window: float
    ) -> tuple[float, list[_Runner]] | None:
        """Lower-priority runners that reach their minimum run within ``window`` and could replace the
        highest-priority victims: (when, runners), booked; None when suspending now is the only way."""
        if not self.young or not math.isfinite(window):
            return None
        top = max(r.priority for r, _ in victims)
        soon = self.soon_cache.get(top)
        if soon is None:  # runners below ``top`` that may be suspended within the window, soonest first
            soon = self.soon_cache[top] = [(t, r) for t, p, r in self.young if p < top and t - now <= window]
        i = self.soon_pos.get(top, 0)
        while i < len(soon) and (soon[i][1].booked or soon[i][1].taken):  # never unbooked: skip them for good
            i += 1
        self.soon_pos[top] = i
        if i == len(soon):
            return None
        have = sum(r.value for r, _ in victims if r.priority < top)
        got: list[_Runner] = []
        for eligible_at, r in soon[i:]:
            if r.booked or r.taken:
                continue
            got.append(r)
            have += r.value
            if have >= need:
                for g in got:
                    g.booked = True
                return eligible_at, got
        return None

    def estimate(
        self, priority: int, user: str, missing: int, wait_ok_at: float, now: float, waited_enough: bool
    ) -> tuple[float, bool, list[_Runner]] | None:
        """When could ``missing`` more nodes be freed by suspending? (time, via time-share?, runners).

        Looks at runners that may not be suspended yet: lower-priority ones until they have run the
        minimum time, equal-priority ones of other users until their slice is over and the waiter has
        waited long enough. The runners counted are *booked* for this estimate, so attempts further
        down the queue do not promise themselves the same nodes. None when even that is not enough.
        """
        young = self.young_cache.get(priority)
        if young is None:
            young = [(t, r) for t, p, r in self.young if p < priority]
            self.young_cache[priority] = young
        equal = self.equal.get(priority, ())
        ny, ne = len(young), len(equal)
        i = self.young_pos.get(priority, 0)
        while i < ny and young[i][1].booked:
            i += 1
        self.young_pos[priority] = i
        j = self.equal_pos.get(priority, 0)
        while j < ne and (equal[j][1].booked or equal[j][1].taken):
            j += 1
        self.equal_pos[priority] = j
        if i >= ny and j >= ne:
            self.exhausted[priority] = True
            return None
        if waited_enough:  # runners whose slice is over already count as eligible now
            j = max(j, self.equal_now.get(priority, 0))
        acc = 0
        got: list[_Runner] = []
        t = now
        via_ts = False
        while acc < missing:
            te = math.inf
            while j < ne:
                r = equal[j][1]
                if r.booked or r.taken or r.user == user:
                    j += 1
                    continue
                te = max(equal[j][0], wait_ok_at)
                break
            while i < ny and young[i][1].booked:
                i += 1
            ty = young[i][0] if i < ny else math.inf
            if ty == math.inf and te == math.inf:
                return None
            if ty <= te:
                t, r = young[i]
                i += 1
                via_ts = False
            else:
                t, r = te, equal[j][1]
                j += 1
                via_ts = True
            acc += r.value
            got.append(r)
        for r in got:
            r.booked = True
        return t, via_ts, got[:MAX_HOLDERS]

    def waiting_for_checkpoint(
        self, priority: int, missing: int, time_share: bool, max_nodes: float, now: float
    ) -> tuple[list[_Runner], float] | None:
        """Runners a non-urgent waiter could suspend once they save a checkpoint: (runners, latest time).

        Lower-priority runners past their minimum run, and (``time_share``) equal-priority ones past
        their slice, that are not fresh now; overdue soonest first. Cached per (priority, need) until
        the group changes; the runners are not booked (an estimate for the explanation only).
        """
        key = (priority, missing, time_share)
        if key in self.ckpt_cache:
            return self.ckpt_cache[key]
        stale = self.stale
        i = self.stale_pos
        while i < len(stale) and stale[i].taken:
            i += 1
        self.stale_pos = i
        got: list[_Runner] = []
        acc = 0
        latest = now
        result: tuple[list[_Runner], float] | None = None
        for r in stale[i:]:
            if r.taken:
                continue
            if r.priority < priority or (
                time_share and r.priority == priority and r.slice_over and r.value <= max_nodes
            ):
                got.append(r)
                acc += r.value
                latest = max(latest, r.checkpoint_at + self.overdue)
                if acc >= missing:
                    result = (got, latest)
                    break
        self.ckpt_cache[key] = result
        return result

    def expected_free(self, missing: int) -> float | None:
        """When runners' estimates say ``missing`` more nodes will have been freed by their ends (runners
        chosen as victims in this pass excluded); None when the estimates known are not enough."""
        acc = 0
        for end, r in self.ends:
            if r.taken:
                continue
            acc += r.value
            if acc >= missing:
                return end
        return None

    def priority_holders(self, priority: int) -> tuple[Holder, ...]:
        """Runners it may not preempt (priority >= its own), highest first; shared per priority."""
        holders = self.prio_holders_cache.get(priority)
        if holders is None:
            out: list[Holder] = []
            for r in self.by_priority:
                if r.priority < priority:
                    break
                if not r.taken:
                    r.listed = True
                    out.append(r.holder)
                    if len(out) == MAX_HOLDERS:
                        break
            holders = tuple(out)
            self.prio_holders_cache[priority] = holders
        return holders


# --------------------------------------------------------------------------------------------------
# The pass


def plan(snapshot: Snapshot) -> Plan:
    """Decide one scheduling pass. Pure: same snapshot, same plan."""
    return _Pass(snapshot).run()


class _Pass:
    def __init__(self, snapshot: Snapshot) -> None:
        self.s = snapshot
        self.cfg = snapshot.config
        self.now = snapshot.now
        self.groups: dict[str, _Group] = {}
        self.quota_used: dict[tuple[str, str, int], int] = {}
        self.quota_running: dict[tuple[str, str, int], list[Holder]] = {}
        self.quota_pass: dict[tuple[str, str, int], list[Holder]] = {}
        self.quota_holders_cache: dict[tuple[str, str, int], tuple[int, tuple[Holder, ...]]] = {}
        self.user_group_holders: dict[tuple[str, str], list[Holder]] = {}
        self.starts: list[Start] = []
        self.suspends: list[Suspend] = []
        self.demotions: list[Demotion] = []
        self.infeasible: list[Infeasible] = []
        self.explanations: dict[int, Explanation] = {}
        self.reservations: list[Reservation] = []
        self.checkpoint_requests: set[int] = set()
        self.quota_level: dict[int, int] = {}  # waiting attempt -> quota level, when it queues lower (aged)

    def quota(self, user: str, group: str, level: int) -> int:
        q = self.s.quotas.get(user)
        return 0 if q is None else q.get((group, level), 0)

    # ---- 1. index ----------------------------------------------------------------------------------

    def index(self) -> None:
        cfg = self.cfg
        now = self.now
        usage = self.s.usage
        groups = self.groups
        held: set[str] = set()
        for r in self.s.running:
            held.update(r.nodes)
        node_group: dict[str, tuple[str, bool]] = {}
        rooms: dict[tuple[str, str], _Room] = {}
        for node in sorted(self.s.nodes, key=_name_of):
            g = groups.get(node.group)
            if g is None:
                g = groups[node.group] = _Group(node.group)
            g.size += 1
            node_group[node.name] = (node.group, node.schedulable)
            if not node.schedulable:
                continue
            g.schedulable += 1
            if node.name in held:
                continue
            room = rooms.get((node.group, node.room))
            if room is None:
                room = rooms[(node.group, node.room)] = _Room(node.room)
            room.names.append(node.name)
            room.free += 1
            g.free += 1
        for (group, _), room in sorted(rooms.items()):
            groups[group].rooms.append(room)
        for g in groups.values():
            g.idle0 = g.free
            g.overdue = cfg.checkpoint_wait_seconds

        min_run = cfg.min_run_seconds
        slice_run = max(cfg.min_run_seconds, cfg.time_slice_seconds)
        restart = cfg.restart_cost_seconds
        fresh_age = cfg.checkpoint_fresh_seconds
        overdue_age = cfg.checkpoint_wait_seconds
        quota_used = self.quota_used
        quota_running = self.quota_running
        user_group_holders = self.user_group_holders
        over_quota = self.over_quota()
        for r in sorted(self.s.running, key=_id_of):
            priority = r.priority
            if priority == _ABOVE_NORMAL and now - r.started_at + r.chain_ran_before >= cfg.above_normal_aging_seconds:
                priority = _NORMAL
                self.demotions.append(Demotion(r.attempt_id, _NORMAL))
            key = (r.user, r.group, r.quota_priority)
            quota_used[key] = quota_used.get(key, 0) + len(r.nodes)
            value = 0
            for name in r.nodes:
                info = node_group.get(name)
                if info is not None and info[1] and info[0] == r.group:
                    value += 1
            runner = _Runner(r, priority, value, usage.get(r.user, 0.0))
            holders = quota_running.get(key)
            if holders is None:
                quota_running[key] = [runner.holder]
            else:
                holders.append(runner.holder)
            holders = user_group_holders.get((r.user, r.group))
            if holders is None:
                user_group_holders[(r.user, r.group)] = [runner.holder]
            else:
                holders.append(runner.holder)
            g = groups.get(r.group)
            if g is None:
                continue
            g.held_at[priority] = g.held_at.get(priority, 0) + value
            if r.suspending or r.attempt_id in over_quota:
                if value:
                    g.becoming.append([runner, value])
                    g.becoming_total += value
                continue
            g.by_priority.append(runner)
            if value == 0:
                continue
            if r.expected_end is not None and r.expected_end > now:
                g.ends.append((r.expected_end, runner))
            ran = now - r.started_at
            if r.last_checkpoint_at is None:
                # no checkpoint in this attempt yet: it restarted from one when its start-up was over, and it
                # cannot save the next one before; counting from the start would call it overdue too early
                runner.checkpoint_at = min(now, r.started_at + restart)
            age = now - runner.checkpoint_at
            runner.cost = value * (age + restart)
            runner.fresh = age <= fresh_age or age >= overdue_age
            if ran >= min_run:
                g.lower.append(runner)
                g.lower_by_level[priority] = g.lower_by_level.get(priority, 0) + value
                if runner.fresh:
                    g.fresh_by_level[priority] = g.fresh_by_level.get(priority, 0) + value
                else:
                    g.stale.append(runner)
                runner.slice_over = ran >= slice_run
                if runner.slice_over and runner.fresh:
                    runner.ts_eligible = True
                    g.ts.setdefault(priority, []).append(runner)
                    g.ts_nodes[priority] = g.ts_nodes.get(priority, 0) + value
                    k = (priority, r.user)
                    g.ts_user[k] = g.ts_user.get(k, 0) + value
            else:
                g.young.append((r.started_at + min_run, priority, runner))
            g.equal.setdefault(priority, []).append((r.started_at + slice_run, runner))

        for g in groups.values():
            g.lower.sort(key=lambda r: (r.priority, r.cost, -r.started_at, r.attempt_id))
            g.lower_fresh = [r for r in g.lower if r.fresh]  # same order
            g.stale.sort(key=lambda r: (r.checkpoint_at, r.attempt_id))
            for runners in g.ts.values():
                runners.sort(key=lambda r: (-r.usage, r.started_at, r.attempt_id))
            g.young.sort(key=lambda e: (e[0], e[2].attempt_id))
            for p, slices in g.equal.items():
                slices.sort(key=lambda e: (e[0], e[1].attempt_id))
                g.equal_now[p] = bisect.bisect_right(slices, now, key=lambda e: e[0])
            g.by_priority.sort(key=lambda r: (-r.priority, r.started_at, r.attempt_id))
            if g.ends:
                g.ends.sort(key=lambda e: (e[0], e[1].attempt_id))

    def over_quota(self) -> set[int]:
        """Runners to suspend because their owner's quota at their level is now below what they hold.

        Per (user, group, level) over quota, the cheapest runners (nodes x work since checkpoint) whose
        nodes cover the excess, dropping any the others already cover. They are suspended at once with
        no beneficiary; their nodes count as being freed for everyone else in this pass.
        """
        used: dict[tuple[str, str, int], int] = {}  # by runners not already suspending
        by_key: dict[tuple[str, str, int], list[Running]] = {}
        get = used.get
        mine_of = by_key.get
        for r in self.s.running:
            if not r.suspending:
                key = (r.user, r.group, r.quota_priority)
                used[key] = get(key, 0) + len(r.nodes)
                mine = mine_of(key)
                if mine is None:
                    by_key[key] = [r]
                else:
                    mine.append(r)
        out: set[int] = set()
        quotas = self.s.quotas
        no_quota: Mapping[tuple[str, int], int] = {}
        over = sorted(
            key for key, nodes in used.items() if nodes > quotas.get(key[0], no_quota).get((key[1], key[2]), 0)
        )
        restart = self.cfg.restart_cost_seconds
        now = self.now
        suspends = self.suspends
        for key in over:
            excess = used[key] - self.quota(*key)
            mine = by_key[key]
            if excess == used[key]:
                # No quota left at all (the common case: a level's quota set to 0). The cheapest-first
                # choice below would take every runner holding a node, whatever the order, and the drop
                # pass would remove exactly the ones holding none (their removal keeps total >= excess,
                # anyone else's does not): the same set without computing costs or sorting.
                for r in sorted(mine, key=_id_of):
                    if r.nodes:
                        out.add(r.attempt_id)
                        suspends.append(_build(Suspend, (r.attempt_id, _OVER_QUOTA, 0)))
                continue
            if len(mine) > 1:  # cheapest first: nodes x (work since the last checkpoint + restart)
                ordered = []
                for r in mine:
                    since = now - (r.started_at if r.last_checkpoint_at is None else r.last_checkpoint_at)
                    ordered.append((len(r.nodes) * (since + restart), -r.started_at, r.attempt_id, r))
                ordered.sort()
                mine = [r for *_, r in ordered]
            chosen: list[Running] = []
            total = 0
            for r in mine:
                if total >= excess:
                    break
                chosen.append(r)
                total += len(r.nodes)
            for r in list(reversed(chosen)):
                if total - len(r.nodes) >= excess:
                    total -= len(r.nodes)
                    chosen.remove(r)
            for r in sorted(chosen, key=_id_of):
                out.add(r.attempt_id)
                self.suspends.append(_build(Suspend, (r.attempt_id, _OVER_QUOTA, 0)))
        return out

    # ---- 2. feasibility --------------------------------------------------------------------------

    def check_feasible(self, w: Waiting) -> tuple[ReasonCode, str]:
        """Why ``w`` can never start (only called for attempts that failed the fast check in ``run``)."""
        g = self.groups.get(w.group)
        problem = infeasibility(w, None if g is None else g.size, self.s.quotas.get(w.user) or {})
        assert problem is not None, f"attempt {w.attempt_id} failed the fast check but is feasible"
        code, message = problem
        return ReasonCode(code), message

    # ---- 3. AUTO ------------------------------------------------------------------------------------

    def resolve_auto(self, autos: list[Waiting]) -> dict[int, int | str]:
        """attempt_id -> resolved level, or the QUOTA message when no level has room."""
        by_user: dict[tuple[str, str], list[Waiting]] = {}
        for w in autos:
            by_user.setdefault((w.user, w.group), []).append(w)
        out: dict[int, int | str] = {}
        for (user, group), lst in sorted(by_user.items()):
            lst.sort(key=_user_order)
            # room left per level, highest level first; it shrinks as earlier AUTO jobs take it
            room = [[lvl, self.quota(user, group, lvl) - self.quota_used.get((user, group, lvl), 0)] for lvl in LEVELS]
            for w in lst:
                n = w.node_count
                for slot in room:
                    if slot[1] >= n:
                        slot[1] -= n
                        out[w.attempt_id] = slot[0]
                        break
                else:
                    levels = []
                    for lvl, left in room:
                        q = self.quota(user, group, lvl)
                        if q > 0:
                            levels.append(f"{_NAMES[lvl]} {q - left}/{q}")
                    out[w.attempt_id] = (
                        f"AUTO found no priority level with {_nodes(n)} of {user}'s quota left in '{group}' "
                        f"(in use/quota, counting {user}'s AUTO jobs ahead of this one: {', '.join(levels)})."
                    )
        return out

    # ---- the whole pass --------------------------------------------------------------------------

    def starving_key(self, w: Waiting) -> float:
        """The fair-share key of an attempt waiting past ``starvation_seconds``: ahead of every usage, the
        smallest estimated footprint (nodes x seconds) first, attempts without an estimate after them.

        With the queue too long to serve everyone soon, serving the small ones first lets the most jobs start
        (as shortest-job-first does); the oldest still gets the group's reservation (``order``)."""
        est = w.run_estimate
        if est is None or not self.cfg.use_estimates:
            return _STARVING_UNKNOWN
        return _STARVING + min(w.node_count * max(est, 0.0), 9e13)

    def run(self) -> Plan:
        self.index()
        groups = self.groups
        quotas = self.s.quotas
        usage = self.s.usage
        aging = self.cfg.above_normal_aging_seconds
        # Entries are gathered per (group, user, level) as they are read, as ``custom_rank`` reorders the jobs of
        # one user at one level (``order``); ``ranked``: the entries whose custom rank is not their first submission.
        owned: dict[tuple[str, str, int], list[_Entry]] = {}
        owned_get = owned.get
        by_group: dict[str, list[tuple[tuple[str, str, int], list[_Entry]]]] = {}
        ranked: dict[tuple[str, str, int], list[_Entry]] = {}
        usage_of = usage.get
        starving = self.now - self.cfg.starvation_seconds  # queued before this: fair share no longer delays it
        autos: list[Waiting] = []
        bad: list[Waiting] = []
        # Per (group, user, level as submitted): [group size (-1: no such group), quota at that level (at the
        # highest level for AUTO; 0 for an unknown level or a user without quotas), its entries once it has any].
        # The tests below are the fast feasibility check, with one lookup per attempt instead of four: a job
        # queues when 0 < nodes <= group size, its environment is ready and its quota covers its nodes (AUTO: the
        # highest of its user's quotas there); anything else goes to ``check_feasible``.
        slots: dict[tuple[str, str, int], list[Any]] = {}
        slot_of = slots.get
        for w in self.s.waiting:
            group = w.group
            user = w.user
            level = w.priority
            key = (group, user, level)
            slot = slot_of(key)
            if slot is None:
                g = groups.get(group)
                uq = quotas.get(user)
                if level == _AUTO:
                    q = max((uq or {}).get((group, lvl), 0) for lvl in LEVELS)
                elif level in _LEVEL_SET and uq is not None:
                    q = uq.get((group, level), 0)
                else:
                    q = 0
                slot = slots[key] = [-1 if g is None else g.size, q, None]
            n = w.node_count
            if 0 < n <= slot[0] and n <= slot[1] and w.environment_ok:
                if level == _AUTO:
                    autos.append(w)
                    continue
                if level == _ABOVE_NORMAL and w.chain_ran >= aging:
                    level = _NORMAL  # its chain aged: it queues and runs at NORMAL, charged to ABOVE_NORMAL
                    self.quota_level[w.attempt_id] = _ABOVE_NORMAL
                    key = (group, user, level)
                    mine = owned_get(key)
                    if mine is None:
                        mine = owned[key] = []
                        by_group.setdefault(group, []).append((key, mine))
                else:
                    mine = slot[2]
                    if mine is None:
                        mine = owned_get(key)  # aged ABOVE_NORMAL jobs may have opened this NORMAL list
                        if mine is None:
                            mine = owned[key] = []
                            by_group.setdefault(group, []).append((key, mine))
                        slot[2] = mine
                # the scheduling order (see ``order``); attempt ids are unique, so Waiting is never compared
                entry = (
                    -level - _CLAIM if w.claim else -level,
                    usage_of(user, 0.0) if w.queued_at > starving else self.starving_key(w),
                    w.first_submitted_at,
                    w.attempt_id,
                    w,
                )
                mine.append(entry)
                if w.custom_rank != w.first_submitted_at:
                    ranked.setdefault(key, []).append(entry)
                continue
            bad.append(w)
        bad.sort(key=_id_of)
        for w in bad:
            code, message = self.check_feasible(w)
            self.infeasible.append(Infeasible(w.attempt_id, code, message))
            resolved = None if w.priority == _AUTO else w.priority
            self.explanations[w.attempt_id] = _explain(w.attempt_id, code, message, 0, (), resolved)
        resolved_auto = self.resolve_auto(autos) if autos else {}
        for w in autos:
            res = resolved_auto[w.attempt_id]
            level = res if isinstance(res, int) else _AUTO
            claim = w.claim and level != _AUTO
            key = (w.group, w.user, level)
            mine = owned_get(key)
            if mine is None:
                mine = owned[key] = []
                by_group.setdefault(w.group, []).append((key, mine))
            entry = (
                -level - _CLAIM if claim else -level,
                usage.get(w.user, 0.0) if w.queued_at > starving else self.starving_key(w),
                w.first_submitted_at,
                w.attempt_id,
                w,
            )
            mine.append(entry)
            # an AUTO job's own rank does not reorder its user's jobs, but it moves among them when another does
            if w.custom_rank != w.first_submitted_at and key in ranked:
                ranked[key].append(entry)
        for name in sorted(by_group):
            queue = self.order(by_group[name], ranked)
            self.walk(groups[name], queue, resolved_auto)

        suspended = {s.attempt_id for s in self.suspends}
        keeps = tuple(sorted(r.attempt_id for r in self.s.running if r.attempt_id not in suspended))
        return Plan(
            starts=tuple(self.starts),
            suspends=tuple(self.suspends),
            demotions=tuple(self.demotions),
            keeps=keeps,
            infeasible=tuple(self.infeasible),
            explanations=self.explanations,
            reservations=tuple(self.reservations),
            checkpoint_requests=tuple(sorted(self.checkpoint_requests)),
        )

    def order(
        self,
        owned: list[tuple[tuple[str, str, int], list[_Entry]]],
        ranked: Mapping[tuple[str, str, int], list[_Entry]],
    ) -> list[_Entry]:
        """One group's queue, from its entries per (group, user, level): claimants first (jobs were
        suspended for them), then priority, fair share (decayed usage), the user's own order, id.

        ``custom_rank`` only reorders a user's own jobs: those of one (user, level) keep the set of
        places their first submissions give them in FIFO order and the rank decides which job takes
        which place, so nobody jumps another user's jobs (``ranked``: the entries whose custom rank is
        not their first submission, per key; the other keys keep their places). Then the oldest attempt
        that has waited past ``reservation_wait_seconds`` at the highest level with such waiters goes
        first in its level (``promote_longest``).
        """
        for key, mine in owned:
            movers = ranked.get(key)
            if movers is not None and len(mine) > 1:
                self.swap_places(mine, movers)
            mine.sort()
        # One user's jobs at one level mostly stand together in the queue (they share the level and the
        # user's fair-share key): the sorted lists laid end to end in the order of their first entries are
        # nearly sorted already, and the final sort, the one that decides, only checks that and merges the
        # few that interleave. Much cheaper than sorting the whole queue from scratch.
        queue: list[_Entry] = []
        for _, mine in sorted(owned, key=_first_entry):
            queue += mine
        queue.sort()
        self.promote_longest(queue)
        return queue

    @staticmethod
    def swap_places(mine: list[_Entry], movers: list[_Entry]) -> None:
        """Give the entries of one (group, user, level) the places of their first submissions in the order
        of their custom ranks (custom rank, first submission, id): the k-th in that order takes the k-th
        earliest place. ``movers`` are the entries whose custom rank is not their first submission.

        Mostly nothing moves (a rank that passes none of the user's other jobs), and that is checked
        first without building the rank order: when the span between each mover's rank and its place
        holds no other entry's place, and the movers' spans do not overlap, every pair of entries is in
        the same order by rank as by place, so every entry keeps its own.
        """
        places = sorted(map(_place_of, mine))
        spans = []
        for e in movers:
            lo, hi = (e[4].custom_rank, e[2]) if e[4].custom_rank < e[2] else (e[2], e[4].custom_rank)
            if bisect.bisect_right(places, hi) - bisect.bisect_left(places, lo) > 1:
                break  # another entry's place is within its span: it may pass it
            spans.append((lo, hi))
        else:
            spans.sort()
            if all(spans[k][1] < spans[k + 1][0] for k in range(len(spans) - 1)):
                return
        by_rank = sorted([(e[4].custom_rank, e[2], e[3], j) for j, e in enumerate(mine)])
        for slot, (_, place, _, j) in zip(places, by_rank, strict=True):
            if slot != place:
                e = mine[j]
                mine[j] = (e[0], e[1], slot, e[3], e[4])

    def promote_longest(self, queue: list[_Entry]) -> None:
        """Move the attempt that gets the group's reservation to the front of its level in the sorted queue.

        That is the longest-waiting attempt past ``reservation_wait_seconds`` (oldest ``queued_at``, then id)
        at the highest level with such waiters, claimants and AUTO attempts that found no level excepted: a
        newer job ahead of it in fair-share order must not take the nodes it is waiting for. Moving it gives
        the order a fair-share key below every other one would, and is found on the sorted queue, looking at
        the levels only down to the first one with such a waiter rather than at every attempt as it is queued.
        """
        cutoff = self.now - self.cfg.reservation_wait_seconds
        if cutoff == -math.inf:  # reservations are off
            return
        claim_key = -_CLAIM
        unresolved = -_AUTO  # the rank of an AUTO attempt that found no level: last, never a candidate
        i = 0
        end = len(queue)
        while i < end and queue[i][0] <= claim_key:  # claimants first, never candidates
            i += 1
        run_start = i
        run_rank = None
        best = -1
        best_key: tuple[float, int] = (math.inf, 0)
        while i < end:
            e = queue[i]
            rank = e[0]
            if rank != run_rank:
                if best >= 0 or rank == unresolved:
                    break  # found in the level above, or only AUTO attempts without a level are left
                run_rank, run_start = rank, i
            queued_at = e[4].queued_at
            if queued_at <= cutoff and (queued_at, e[3]) < best_key:
                best, best_key = i, (queued_at, e[3])
            i += 1
        if best > run_start:
            queue.insert(run_start, queue.pop(best))

    def quota_holders(self, key: tuple[str, str, int]) -> tuple[Holder, ...]:
        used = self.quota_used.get(key, 0)
        cached = self.quota_holders_cache.get(key)
        if cached is not None and cached[0] == used:
            return cached[1]
        running = sorted(self.quota_running.get(key, ()), key=lambda h: (-h.nodes, h.attempt_id))
        holders = tuple((running + self.quota_pass.get(key, []))[:MAX_HOLDERS])
        self.quota_holders_cache[key] = (used, holders)
        return holders

    def walk(self, g: _Group, queue: list[_Entry], resolved_auto: Mapping[int, int | str]) -> None:
        """Go down one group's queue once, starting, claiming, preempting or explaining."""
        cfg = self.cfg
        now = self.now
        quota_used = self.quota_used
        quota_pass = self.quota_pass
        explanations = self.explanations
        starts = self.starts
        quotas = self.s.quotas
        quota_of: dict[tuple[str, str, int], int] = {}
        tw = cfg.timeshare_wait_seconds
        reservation_wait = cfg.reservation_wait_seconds
        gname = g.name
        QUOTA = ReasonCode.QUOTA

        urgent_level = cfg.urgent_priority
        max_ratio = cfg.timeshare_max_ratio
        victim_wait = cfg.victim_wait_seconds
        hold_horizon = cfg.reservation_hold_seconds
        preempt_wait = cfg.preempt_wait_seconds
        estimate_backfill = cfg.estimate_backfill
        quota_level = self.quota_level
        normal = _NORMAL
        auto = _AUTO
        usage_of = self.s.usage.get
        claim_key = -_CLAIM
        blocked_get = g.blocked_cache.get  # the dict is cleared, never replaced, so the bound method stays valid
        new = _build
        for entry in queue:
            w = entry[4]  # entry.waiting, entry.rank: indexing is the cheaper read in this loop
            rank = entry[0]
            level = -rank if rank > claim_key else -rank - _CLAIM
            n = w.node_count
            user = w.user
            aid = w.attempt_id
            if level == auto:
                g.position += 1
                mine = self.user_group_holders.get((user, gname), ())
                holders = tuple(sorted(mine, key=lambda h: (-h.priority, -h.nodes, h.attempt_id))[:MAX_HOLDERS])
                message = str(resolved_auto[aid])
                explanations[aid] = _explain(aid, QUOTA, message, g.position, holders, None)
                continue

            # 2. quota (an aged chain is charged to the level it was admitted at)
            # only attempts queued at NORMAL can be aged ABOVE_NORMAL ones (``run``): no lookup for the others
            qlevel = quota_level.get(aid, level) if level == normal and quota_level else level
            key = (user, gname, qlevel)
            used = quota_used.get(key, 0)
            q = quota_of.get(key)
            if q is None:
                uq = quotas.get(user)
                q = quota_of[key] = 0 if uq is None else uq.get((gname, qlevel), 0)
            if used + n > q:
                g.position += 1
                explanations[aid] = _explain(
                    aid,
                    QUOTA,
                    f"{user}'s quota in '{gname}' at {_NAMES[qlevel]} is {_nodes(q)}; {used} in use and this job "
                    f"needs {n}. It can start when {user}'s jobs there free {used + n - q}.",
                    g.position,
                    self.quota_holders(key),
                    level,
                )
                continue

            # 4. start on free nodes (backfill: on a reservation's idle nodes too, if done or suspendable by
            # the time its job can start)
            avail = g.free - g.claimed_free - g.reserved_free
            if avail < n and g.reserved_free and avail + g.reserved_free >= n and self.backfills(g, w, level):
                g.reserved_free -= n - avail
                avail = n
            if avail >= n:
                starts.append(_build(Start, (aid, g.take_nodes(n), qlevel, None if qlevel == level else level)))
                me = _holder(aid, user, n, level)
                quota_used[key] = used + n
                quota_pass.setdefault(key, []).append(me)
                g.starters.append(me)
                continue
            # Nothing changed in the group since an attempt of this level and size was found blocked for
            # reasons that do not depend on who asks: same answer (most of a long queue ends here).
            blocked_key = level * _LEVEL_KEY + n
            same = blocked_get(blocked_key)
            if same is not None and (g.reserver is not None or now - w.queued_at < reservation_wait):
                g.position = position = g.position + 1
                # ``_explain(aid, *same, position, level)`` inlined: a call fewer on the path most attempts take
                explanations[aid] = new(Explanation, (aid, same[0], same[1], position, same[2], level, None))
                continue

            becoming = g.becoming_total
            waited = now - w.queued_at
            ts_ok = waited >= tw
            urgent = level >= urgent_level
            cap = 0
            if g.reserver is None:  # behind a reservation nobody claims or suspends (rule 7)
                # 5a. nodes already being freed by suspending attempts: claim them, pick no new victim
                if avail + becoming >= n:
                    self.claim(g, w, level, key, avail, n - avail, [])
                    continue
                # 5b / 6. suspend lower-priority runners, then time-share with equal-priority ones
                need = n - avail - becoming
                cap = g.lower_cap(level, not urgent)
                if ts_ok:
                    cap += g.ts_nodes.get(level, 0) - g.ts_user.get((level, user), 0)
                if cap >= need and not urgent and waited < preempt_wait:
                    # 5c. a non-urgent waiter lets nodes free up on their own for a while: jobs end every few
                    # minutes on a busy cluster, and a suspension costs its victim a restart
                    victims = g.select_victims(level, user, need, ts_ok, urgent, max_ratio, usage_of(user, 0.0))
                    if victims is not None:
                        g.position += 1
                        at = w.queued_at + preempt_wait
                        explanations[aid] = _explain(
                            aid,
                            ReasonCode.PREEMPT_WAIT,
                            f"Will suspend {_named(r.holder for r, _ in victims)} in '{gname}' in about "
                            f"{format_duration(at - now)} unless {_nodes(need)} free up before: below "
                            f"{_NAMES.get(urgent_level, urgent_level)} a job waits {format_duration(preempt_wait)} "
                            "before suspending others, as jobs end every few minutes and a suspension costs a "
                            "restart.",
                            g.position,
                            tuple(r.holder for r, _ in victims)[:MAX_HOLDERS],
                            level,
                            at,
                        )
                        continue
                if cap >= need:
                    victims = g.select_victims(level, user, need, ts_ok, urgent, max_ratio, usage_of(user, 0.0))
                    if victims is not None:
                        soon = g.cheaper_soon(victims, need, now, victim_wait)
                        if soon is None:
                            self.claim(g, w, level, key, avail, becoming, victims)
                            continue
                        g.position += 1
                        soon_at, cheap = soon
                        spared = sorted({r.holder for r, _ in victims if r.priority > cheap[-1].priority}, key=_hid)
                        explanations[aid] = _explain(
                            aid,
                            ReasonCode.MIN_RUNTIME,
                            f"Waits about {format_duration(soon_at - now)} for lower-priority "
                            f"{_named(r.holder for r in cheap)} to run the minimum "
                            f"{format_duration(cfg.min_run_seconds)} and suspends "
                            f"{'it' if len(cheap) == 1 else 'them'} then, rather than suspending {_named(spared)} now: "
                            f"that loses less work.",
                            g.position,
                            tuple(r.holder for r in cheap)[:MAX_HOLDERS],
                            level,
                            soon_at,
                        )
                        continue

            # 8. it waits: say why
            g.position += 1
            reserve_note = ""
            code, message, holders, eta = self.blocked(g, w, level, n, avail, becoming, cap, ts_ok, urgent)
            if g.reserver is None and waited >= reservation_wait and g.schedulable >= n:
                # 7. anti-starvation: hold what is being freed for it, and what is idle when it can start
                # soon; nobody behind it in the queue may suspend anyone in the group until it starts.
                # Idle nodes it could not use for a long time stay open to jobs behind it (backfill).
                me = _holder(aid, user, n, level)
                g.reserver = w
                g.blocked_cache.clear()
                g.reserver_holder = me
                start_at = eta
                if estimate_backfill and n > avail + becoming:
                    ends_at = g.expected_free(n - avail - becoming)
                    if ends_at is not None and (start_at is None or ends_at < start_at):
                        start_at = ends_at
                g.shadow = start_at
                g.reserve_holds = start_at is not None and start_at - now <= hold_horizon
                held = avail if g.reserve_holds else 0
                g.reserved_free = held
                if becoming:
                    g.claim_becoming(becoming)
                g.reserved_becoming = becoming
                self.reservations.append(Reservation(aid, gname, held, becoming, start_at))
                quota_used[key] = used + n
                quota_pass.setdefault(key, []).append(me)
                if g.reserve_holds:
                    reserve_note = (
                        f" It has waited {format_duration(waited)}, so it holds the reservation of '{gname}' "
                        f"({held + becoming} idle or being freed now): jobs behind it may not start there or suspend "
                        f"others until it starts."
                    )
                else:
                    being_freed = f" and the {becoming} being freed" if becoming else ""
                    reserve_note = (
                        f" It has waited {format_duration(waited)}, so it holds the reservation of '{gname}'"
                        f"{being_freed}: jobs behind it may not suspend others there until it starts. Idle nodes "
                        f"stay open to them, as it cannot start within {format_duration(hold_horizon)}."
                    )
            explanations[aid] = _explain(aid, code, message + reserve_note, g.position, holders, level, eta)
            if not reserve_note and (
                code is ReasonCode.RESERVED
                or code is ReasonCode.NO_NODES
                or (eta is None and not g.ts_nodes.get(level) and g.exhausted.get(level))
            ):
                g.blocked_cache[blocked_key] = (code, message, holders)

    def backfills(self, g: _Group, w: Waiting, level: int) -> bool:
        """May ``w`` start on idle nodes held by ``g``'s reservation? Only if it will not delay the
        reserved job: it is expected to be done by then, or it is at a lower level and will have run
        ``min_run_seconds`` by then, so that the reserved job can suspend it."""
        shadow = g.shadow
        if shadow is None or g.reserver is None or not self.cfg.estimate_backfill:
            return False
        est = w.run_estimate
        if est is not None and self.now + est <= shadow:
            return True
        reserver_level = g.reserver_holder.priority if g.reserver_holder is not None else level
        return (
            self.cfg.backfill_suspendable and level < reserver_level and self.now + self.cfg.min_run_seconds <= shadow
        )

    def claim(
        self,
        g: _Group,
        w: Waiting,
        level: int,
        key: tuple[str, str, int],
        from_free: int,
        from_becoming: int,
        victims: list[tuple[_Runner, SuspendReason]],
    ) -> None:
        """``w`` waits for suspends: hold its free and becoming-free nodes, suspend ``victims``, explain."""
        n = w.node_count
        aid = w.attempt_id
        g.blocked_cache.clear()
        g.claimed_free += from_free
        sources = g.claim_becoming(from_becoming) if from_becoming else []
        me = _build(Holder, (aid, w.user, n, level))  # ``_holder`` inlined
        self.quota_used[key] = self.quota_used.get(key, 0) + n
        self.quota_pass.setdefault(key, []).append(me)
        if from_free:
            g.claimers.append(me)
        g.position += 1
        held = (
            f" {_nodes(from_free)} idle in '{g.name}' {'is' if from_free == 1 else 'are'} held for it meanwhile."
            if from_free
            else ""
        )
        if not victims:
            holders = tuple([r.holder for r in sources[:MAX_HOLDERS]])
            message = (
                f"{from_becoming} of the {_nodes(n)} it needs in '{g.name}' are being freed by suspending job(s) "
                f"{_ids(holders)}; it starts once {'it has' if len(sources) == 1 else 'they have'} stopped.{held}"
            )
        else:
            need = n - from_free - from_becoming
            freed = 0
            ts_count = 0
            for r, reason in victims:
                g.mark_taken(r)
                freed += r.value
                if reason is _TIME_SHARE:
                    ts_count += 1
                self.suspends.append(_build(Suspend, (r.attempt_id, reason, aid)))
            if freed > need:  # the last victim's extra nodes go to whoever needs them next
                g.becoming.append([victims[-1][0], freed - need])
                g.becoming_total += freed - need
            holders = tuple([r.holder for r, _ in victims] + [r.holder for r in sources])[:MAX_HOLDERS]
            why = f", {ts_count} of them to time-share at {_NAMES[level]}" if ts_count else ""
            also = f"; {from_becoming} more are already being freed" if from_becoming else ""
            message = (
                f"Asked {_plural(len(victims), 'job')} to suspend ({_ids(r.holder for r, _ in victims)}{why}) to free "
                f"{_nodes(need)} in '{g.name}'{also}; it starts once "
                f"{'it has' if len(victims) + len(sources) == 1 else 'they have'} stopped.{held}"
            )
        self.explanations[aid] = _build(  # ``_explain`` inlined
            Explanation, (aid, _WAITING_FOR_SUSPEND, message, g.position, holders, level, None)
        )

    def blocked(
        self,
        g: _Group,
        w: Waiting,
        level: int,
        n: int,
        avail: int,
        becoming: int,
        cap: int,
        ts_ok: bool,
        urgent: bool = True,
    ) -> tuple[ReasonCode, str, tuple[Holder, ...], float | None]:
        """The reason an in-quota attempt that could neither start, claim nor suspend is waiting."""
        gname = g.name
        now = self.now
        if g.schedulable < n:
            now_ok = (
                "none is" if g.schedulable == 0 else f"only {g.schedulable} {'is' if g.schedulable == 1 else 'are'}"
            )
            return (
                ReasonCode.NO_NODES,
                f"Needs {_nodes(n)} but group '{gname}' has {_nodes(g.size)} and {now_ok} schedulable now (the others "
                f"are not ready or disabled).",
                (),
                None,
            )
        reserver = g.reserver
        if reserver is not None and reserver is not w and g.reserver_holder is not None:
            reserved = g.reserved_free + g.reserved_becoming
            if not g.reserve_holds:
                return (
                    ReasonCode.RESERVED,
                    f"Job #{reserver.attempt_id} ({reserver.user}, waiting {format_duration(now - reserver.queued_at)} "
                    f"for {_nodes(reserver.node_count)}) is ahead of it and holds the reservation of '{gname}': until "
                    f"it starts, jobs behind it may not suspend others there, and {avail} idle "
                    f"{'is' if avail == 1 else 'are'} not enough for this one.",
                    (g.reserver_holder,),
                    None,
                )
            return (
                ReasonCode.RESERVED,
                f"Job #{reserver.attempt_id} ({reserver.user}, waiting {format_duration(now - reserver.queued_at)} for "
                f"{_nodes(reserver.node_count)}) is ahead of it and holds the reservation of '{gname}' "
                f"({reserved} idle or being freed now): until it starts, jobs behind it neither start on idle nodes "
                f"nor suspend others there.",
                (g.reserver_holder,),
                None,
            )
        missing = n - avail - becoming - cap
        if missing > 0 and not urgent and g.stale:
            found = g.waiting_for_checkpoint(level, missing, ts_ok, n * self.cfg.timeshare_max_ratio, now)
            if found is not None:
                runners, eta = found
                holders = tuple(r.holder for r in runners[:MAX_HOLDERS])
                asked = ""
                if self.cfg.request_checkpoints and now - w.queued_at >= self.cfg.preempt_wait_seconds:
                    # not before it may suspend them: a checkpoint saved earlier would be stale again by then
                    self.checkpoint_requests.update(r.attempt_id for r in runners)
                    asked = f"{'It has' if len(runners) == 1 else 'They have'} been asked to save one now. "
                return (
                    ReasonCode.CHECKPOINT,
                    f"Can suspend {_named(holders)} in '{gname}' once {'it has' if len(runners) == 1 else 'they have'} "
                    f"saved a checkpoint, so that little work is lost. {asked}At the latest in about "
                    f"{format_duration(eta - now)} (a checkpoint {format_duration(self.cfg.checkpoint_wait_seconds)} "
                    f"old).",
                    holders,
                    eta,
                )
        if missing > 0 and not g.exhausted.get(level):
            est = g.estimate(level, w.user, missing, w.queued_at + self.cfg.timeshare_wait_seconds, now, ts_ok)
            if est is not None:
                eta, via_ts, runners = est
                holders = tuple(r.holder for r in runners)
                if via_ts:
                    return (
                        ReasonCode.TIME_SLICE,
                        f"Will get a time-share turn in '{gname}' in about {format_duration(eta - now)}: "
                        f"equal-priority ({_NAMES[level]}) jobs of other users ({_ids(holders)}) may be suspended once "
                        f"they have run a {format_duration(self.cfg.time_slice_seconds)} slice and this job has waited "
                        f"{format_duration(self.cfg.timeshare_wait_seconds)}.",
                        holders,
                        eta,
                    )
                return (
                    ReasonCode.MIN_RUNTIME,
                    f"Can suspend lower-priority jobs in '{gname}' ({_ids(holders)}) once they have run the minimum "
                    f"{format_duration(self.cfg.min_run_seconds)}: in about {format_duration(eta - now)}.",
                    holders,
                    eta,
                )
        if g.free >= n:  # enough idle nodes, but held in pieces for gangs ahead that wait for the rest
            claimers = tuple(g.claimers[:MAX_HOLDERS])
            return (
                ReasonCode.FRAGMENTATION,
                f"{g.free} nodes of '{gname}' are idle, enough for its {n}, but {g.claimed_free} of them are held "
                f"for jobs ahead of it ({_ids(claimers)}) until the jobs they suspended have stopped; {avail} left.",
                claimers,
                None,
            )
        if g.idle0 >= n:
            return (
                ReasonCode.PRIORITY,
                f"Needs {_nodes(n)} in '{gname}': {g.idle0} were idle but jobs ahead of it in the queue started on "
                f"{g.idle0 - g.free} of them in this pass; {avail} left.",
                tuple(g.starters[:MAX_HOLDERS]),
                None,
            )
        cache_key = (level, n, avail, cap)
        message = g.message_cache.get(cache_key)
        if message is None:
            above = 0
            for lvl, nodes in g.held_at.items():
                if lvl >= level:
                    above += nodes
            lower = f"; suspending every eligible lower-priority job would free only {cap}" if cap else ""
            message = g.message_cache[cache_key] = (
                f"Needs {_nodes(n)} in '{gname}' and {avail} {'is' if avail == 1 else 'are'} free; {above} of the "
                f"group's {g.schedulable} schedulable nodes {'is' if above == 1 else 'are'} held by jobs at "
                f"{_NAMES[level]} or higher, which it may not suspend{lower}."
            )
        return ReasonCode.PRIORITY, message, g.priority_holders(level), None
