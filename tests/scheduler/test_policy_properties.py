"""Properties of the scheduling policy over random clusters and workloads (Hypothesis).

Each example is a small cluster (1-4 groups, 1-30 nodes in rooms, some not schedulable), running
attempts on distinct nodes of their group (quotas sometimes already exceeded), and waiting attempts
of several users at every priority including AUTO. The invariants are the brief's: no node
double-booked, quota never exceeded, victims strictly lower (or the time-share rule) and minimal,
deterministic, every decision explained.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.scheduler.policy import (
    INFEASIBLE_CODES,
    LEVELS,
    MAX_HOLDERS,
    Node,
    Plan,
    PolicyConfig,
    Priority,
    ReasonCode,
    Running,
    Snapshot,
    SuspendReason,
    Waiting,
    plan,
)

NOW = 100_000.0
USERS = ("ann", "bob", "cat", "dan")
AGES = (0.0, 60.0, 299.0, 300.0, 900.0, 1799.0, 1800.0, 3600.0, 7200.0, 20000.0)
WAITS = (0.0, 60.0, 899.0, 900.0, 1800.0, 5000.0)


@st.composite
def snapshots(draw: st.DrawFn, starving: bool = False) -> Snapshot:
    """A random snapshot; ``starving``: every waiting attempt has waited long enough for a reservation."""
    groups = [f"g{i}" for i in range(draw(st.integers(1, 4)))]
    n_nodes = draw(st.one_of(st.integers(1, 8), st.integers(8, 30)))
    # a narrow palette makes equal priorities (time-sharing) and aging common
    users = draw(st.sampled_from((USERS, USERS, USERS[:2], USERS[:1])))  # few users: quota and same-user rules bite
    palette = draw(st.sampled_from((LEVELS, LEVELS, (10, 20, 0), (10,), (10, 30), (20, 10))))
    node_list = [
        Node(
            name=f"n{i:02d}",
            group=draw(st.sampled_from(groups)),
            room=draw(st.sampled_from(("", "r1", "r2"))),
            schedulable=draw(st.integers(0, 9)) > 0,
        )
        for i in range(n_nodes)
    ]
    free_by_group: dict[str, list[str]] = defaultdict(list)
    for node in node_list:
        free_by_group[node.group].append(node.name)
    running: list[Running] = []
    attempt = 1
    for _ in range(draw(st.integers(0, 14))):
        group = draw(st.sampled_from(groups))
        pool = free_by_group[group]
        if not pool:
            continue
        size = draw(st.integers(1, min(4, len(pool))))
        held, free_by_group[group] = pool[:size], pool[size:]
        priority = draw(st.sampled_from(palette))
        started = NOW - draw(st.sampled_from(AGES))
        running.append(
            Running(
                attempt_id=attempt,
                chain_id=f"c{attempt}",
                user=draw(st.sampled_from(users)),
                group=group,
                priority=priority,
                quota_priority=priority if draw(st.integers(0, 4)) else draw(st.sampled_from(LEVELS)),
                nodes=tuple(held),
                started_at=started,
                last_checkpoint_at=None
                if draw(st.booleans())
                else started + (NOW - started) * draw(st.sampled_from((0.1, 0.5, 0.9))),
                suspending=draw(st.integers(0, 9)) == 0,
                chain_ran_before=draw(st.sampled_from((0.0, 0.0, 1700.0))),
                expected_end=draw(st.sampled_from((None, None, NOW - 60.0, NOW + 600.0, NOW + 7200.0))),
            )
        )
        attempt += 1
    waiting: list[Waiting] = []
    for _ in range(draw(st.integers(0, 16))):
        first = NOW - draw(st.sampled_from(AGES))
        waiting.append(
            Waiting(
                attempt_id=attempt,
                chain_id=f"c{attempt}",
                user=draw(st.sampled_from(users)),
                group=draw(st.sampled_from(groups)) if draw(st.integers(0, 19)) else "nowhere",
                node_count=draw(st.integers(1, 4)),
                priority=draw(st.sampled_from((*palette, int(Priority.AUTO)))),
                custom_rank=first if draw(st.integers(0, 3)) else float(draw(st.integers(0, 3))),
                first_submitted_at=first,
                queued_at=max(first, NOW - draw(st.sampled_from(WAITS))),
                environment_ok=draw(st.integers(0, 19)) > 0,
                chain_ran=draw(st.sampled_from((0.0, 0.0, 3600.0))),
                claim=draw(st.integers(0, 5)) == 0,
                run_estimate=draw(st.sampled_from((None, None, 300.0, 3600.0))),
            )
        )
        attempt += 1
    keys = [(g, lvl) for g in groups for lvl in LEVELS]
    quotas = {
        user: dict(zip(keys, draw(st.lists(st.integers(0, 6), min_size=len(keys), max_size=len(keys))), strict=True))
        for user in USERS
    }
    usage = {user: float(draw(st.sampled_from((0, 10, 500)))) for user in USERS}
    config = PolicyConfig(
        min_run_seconds=draw(st.sampled_from((0.0, 300.0))),
        time_slice_seconds=draw(st.sampled_from((600.0, 3600.0))),
        timeshare_wait_seconds=draw(st.sampled_from((0.0, 900.0))),
        reservation_wait_seconds=0.0 if starving else draw(st.sampled_from((0.0, 1800.0, float("inf")))),
        reservation_hold_seconds=draw(st.sampled_from((0.0, 1800.0))),
        checkpoint_fresh_seconds=draw(st.sampled_from((60.0, 180.0))),
        urgent_priority=draw(st.sampled_from((0, 30, 50))),
        victim_wait_seconds=draw(st.sampled_from((0.0, 600.0))),
        use_estimates=draw(st.booleans()),
        estimate_backfill=draw(st.booleans()),
        backfill_suspendable=draw(st.booleans()),
    )
    return Snapshot(NOW, tuple(node_list), tuple(running), tuple(waiting), quotas, usage, config)


def effective_priority(r: Running, s: Snapshot) -> int:
    aged = s.now - r.started_at + r.chain_ran_before >= s.config.above_normal_aging_seconds
    if r.priority == Priority.ABOVE_NORMAL and aged:
        return int(Priority.NORMAL)
    return r.priority


def fresh(r: Running, s: Snapshot) -> bool:
    """A non-urgent suspend may take it: its checkpoint is recent, or overdue. An attempt that has
    not checkpointed yet counts from the end of its start-up (it restarted from a checkpoint then,
    ``restart_cost_seconds`` after it started), not from its start."""
    if r.last_checkpoint_at is None:
        since = min(s.now, r.started_at + s.config.restart_cost_seconds)
    else:
        since = r.last_checkpoint_at
    age = s.now - since
    return age <= s.config.checkpoint_fresh_seconds or age >= s.config.checkpoint_wait_seconds


def check_plan(s: Snapshot, result: Plan) -> None:
    nodes = {n.name: n for n in s.nodes}
    runs = {r.attempt_id: r for r in s.running}
    waits = {w.attempt_id: w for w in s.waiting}
    quota = s.quotas

    # every running attempt is kept or suspended, exactly once
    suspended = [x.attempt_id for x in result.suspends]
    assert len(suspended) == len(set(suspended))
    assert sorted([*result.keeps, *suspended]) == sorted(runs)

    # every waiting attempt starts, is infeasible, or is explained with a queue position
    started = {x.attempt_id: x for x in result.starts}
    infeasible = {x.attempt_id: x for x in result.infeasible}
    assert len(started) == len(result.starts)
    for aid in waits:
        if aid in started:
            assert aid not in result.explanations
            assert aid not in infeasible
        elif aid in infeasible:
            e = result.explanations[aid]
            assert e.code is infeasible[aid].code
            assert e.code in INFEASIBLE_CODES
            assert e.position == 0
        else:
            e = result.explanations[aid]
            assert e.code not in INFEASIBLE_CODES
            assert e.position >= 1
            assert e.message
    assert set(result.explanations) | set(started) == set(waits)
    for e in result.explanations.values():
        assert len(e.holders) <= MAX_HOLDERS
    positions: dict[str, list[int]] = defaultdict(list)
    for aid, e in result.explanations.items():
        if e.position:
            positions[waits[aid].group].append(e.position)
    for group_positions in positions.values():
        assert sorted(group_positions) == list(range(1, len(group_positions) + 1))

    # whole nodes, no node double-booked, only schedulable nodes of the job's group
    held = {name for r in s.running for name in r.nodes}
    given: list[str] = []
    for x in result.starts:
        w = waits[x.attempt_id]
        assert len(x.nodes) == w.node_count
        for name in x.nodes:
            assert nodes[name].schedulable
            assert nodes[name].group == w.group
            assert name not in held
        given.extend(x.nodes)
        assert x.priority in LEVELS
        if w.priority != Priority.AUTO:
            assert x.priority == w.priority
        if x.effective_priority is not None:  # an aged chain runs at NORMAL, charged to ABOVE_NORMAL
            assert (x.priority, x.effective_priority) == (Priority.ABOVE_NORMAL, Priority.NORMAL)
            assert w.chain_ran >= s.config.above_normal_aging_seconds
    assert len(given) == len(set(given))

    # quota never exceeded by starts
    charged: Counter[tuple[str, str, int]] = Counter()
    for r in s.running:
        charged[(r.user, r.group, r.quota_priority)] += len(r.nodes)
    starting: Counter[tuple[str, str, int]] = Counter()
    for x in result.starts:
        w = waits[x.attempt_id]
        starting[(w.user, w.group, x.priority)] += w.node_count
    for (user, group, level), n in starting.items():
        assert charged[(user, group, level)] + n <= quota.get(user, {}).get((group, level), 0)

    # victims: lower priority (or the time-share rule), eligible, minimal
    active: Counter[tuple[str, str, int]] = Counter()  # held by runners not already suspending
    for r in s.running:
        if not r.suspending:
            active[(r.user, r.group, r.quota_priority)] += len(r.nodes)
    demoted = {d.attempt_id for d in result.demotions}
    assert demoted == {r.attempt_id for r in s.running if effective_priority(r, s) != r.priority}
    by_beneficiary: dict[int, list[Running]] = defaultdict(list)
    over: dict[tuple[str, str, int], list[Running]] = defaultdict(list)
    for x in result.suspends:
        if x.reason is SuspendReason.OVER_QUOTA:  # its owner holds more than the quota at its level
            v = runs[x.attempt_id]
            key = (v.user, v.group, v.quota_priority)
            assert x.beneficiary_attempt_id == 0
            assert not v.suspending
            assert active[key] > quota.get(v.user, {}).get((v.group, v.quota_priority), 0)
            over[key].append(v)
            continue
        v, b = runs[x.attempt_id], waits[x.beneficiary_attempt_id]
        e = result.explanations[b.attempt_id]
        assert e.code is ReasonCode.WAITING_FOR_SUSPEND
        assert b.attempt_id not in started
        assert v.group == b.group
        assert not v.suspending
        assert s.now - v.started_at >= s.config.min_run_seconds
        pv, pb = effective_priority(v, s), e.resolved_priority
        assert pb is not None
        if x.reason is SuspendReason.PREEMPTED:
            assert pv < pb
            assert pb >= s.config.urgent_priority or fresh(v, s)
        else:
            assert x.reason is SuspendReason.TIME_SHARE
            assert pv == pb
            assert v.user != b.user
            assert s.now - v.started_at >= s.config.time_slice_seconds
            assert s.now - b.queued_at >= s.config.timeshare_wait_seconds
            assert fresh(v, s)
            assert len(v.nodes) <= s.config.timeshare_max_ratio * b.node_count
            assert s.usage.get(v.user, 0.0) >= s.usage.get(b.user, 0.0)  # turns go to who had less
        assert not (v.user == b.user and pv == pb)
        by_beneficiary[b.attempt_id].append(v)

    def frees(r: Running) -> int:
        return sum(1 for name in r.nodes if name in nodes and nodes[name].schedulable and nodes[name].group == r.group)

    for aid, victims in by_beneficiary.items():
        total = sum(frees(v) for v in victims)
        for v in victims:
            assert frees(v) > 0
            assert total - frees(v) < waits[aid].node_count  # without any one victim it would be short
    for key, victims in over.items():
        excess = active[key] - quota.get(key[0], {}).get((key[1], key[2]), 0)
        total = sum(len(v.nodes) for v in victims)
        assert total >= excess
        for v in victims:
            assert total - len(v.nodes) < excess  # minimal

    # no head-of-line waste: where nothing is held back, an in-quota job that waits could not fit
    held_back = {r.group for r in result.reservations}
    held_back |= {
        waits[aid].group for aid, e in result.explanations.items() if e.code is ReasonCode.WAITING_FOR_SUSPEND
    }
    free_left: Counter[str] = Counter(
        n.group for n in s.nodes if n.schedulable and n.name not in held and n.name not in set(given)
    )
    for aid, e in result.explanations.items():
        w = waits[aid]
        if e.position and e.code is not ReasonCode.QUOTA and w.group not in held_back:
            assert w.node_count > free_left[w.group], (aid, e)
    assert len(held_back) >= len(result.reservations) == len({r.group for r in result.reservations})

    # a reservation: the idle nodes it holds stay idle, nobody behind it suspends in its group
    for r in result.reservations:
        e = result.explanations[r.attempt_id]
        assert e.resolved_priority is not None
        assert waits[r.attempt_id].group == r.group
        assert s.now - waits[r.attempt_id].queued_at >= s.config.reservation_wait_seconds
        # ... but for jobs expected to be done before its job can start, or (backfill_suspendable) at a lower
        # level, that it will be able to suspend by then (estimate backfill)
        backfilled = 0
        if s.config.estimate_backfill and r.start_at is not None:
            for x in result.starts:
                w = waits[x.attempt_id]
                on_time = w.run_estimate is not None and s.now + w.run_estimate <= r.start_at
                suspendable = (
                    s.config.backfill_suspendable
                    and x.priority < e.resolved_priority
                    and s.now + s.config.min_run_seconds <= r.start_at
                )
                if w.group == r.group and (on_time or suspendable):
                    backfilled += len(x.nodes)
        assert free_left[r.group] + backfilled >= r.free_nodes
        for x in result.suspends:
            if x.beneficiary_attempt_id and waits[x.beneficiary_attempt_id].group == r.group:
                assert result.explanations[x.beneficiary_attempt_id].position < e.position


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_plan_invariants(s: Snapshot) -> None:
    check_plan(s, plan(s))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_whatever_the_input_order(s: Snapshot, rng: random.Random) -> None:
    first = plan(s)
    assert plan(s) == first
    shuffled = [list(s.nodes), list(s.running), list(s.waiting)]
    for items in shuffled:
        rng.shuffle(items)
    copy = Snapshot(
        s.now,
        tuple(shuffled[0]),
        tuple(shuffled[1]),
        tuple(shuffled[2]),
        dict(reversed(list(s.quotas.items()))),
        dict(reversed(list(s.usage.items()))),
        s.config,
    )
    assert plan(copy) == first


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(starving=True))
def test_reservation_holds_back_everyone_behind_the_starving_attempt(s: Snapshot) -> None:
    result = plan(s)
    check_plan(s, result)  # includes: no start and no suspend behind a reservation in its group
    waits = {w.attempt_id: w for w in s.waiting}
    for r in result.reservations:
        mark = result.explanations[r.attempt_id].position
        for aid, e in result.explanations.items():
            if waits[aid].group == r.group and e.position > mark:
                assert e.code in (ReasonCode.RESERVED, ReasonCode.QUOTA, ReasonCode.NO_NODES)


def apply(s: Snapshot, result: Plan, later: float) -> Snapshot:
    """What the driver does: starts run, victims are suspending, demotions are recorded."""
    waits = {w.attempt_id: w for w in s.waiting}
    suspended = {x.attempt_id for x in result.suspends}
    demoted = {d.attempt_id: d.new_priority for d in result.demotions}
    claimants = {x.beneficiary_attempt_id for x in result.suspends}
    running = [
        Running(
            r.attempt_id,
            r.chain_id,
            r.user,
            r.group,
            demoted.get(r.attempt_id, r.priority),
            r.quota_priority,
            r.nodes,
            r.started_at,
            r.last_checkpoint_at,
            r.suspending or r.attempt_id in suspended,
            r.chain_ran_before,
        )
        for r in s.running
    ]
    for x in result.starts:
        w = waits[x.attempt_id]
        level = x.priority if x.effective_priority is None else x.effective_priority
        running.append(Running(w.attempt_id, w.chain_id, w.user, w.group, level, x.priority, x.nodes, s.now))
    started = {x.attempt_id for x in result.starts}
    waiting = tuple(
        dataclasses.replace(w, claim=w.claim or w.attempt_id in claimants)
        for w in s.waiting
        if w.attempt_id not in started
    )
    return Snapshot(later, s.nodes, tuple(running), waiting, s.quotas, s.usage, s.config)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_next_pass_frees_no_extra_victims_for_attempts_waiting_on_suspends(s: Snapshot) -> None:
    first = plan(s)
    second_snapshot = apply(s, first, s.now)
    second = plan(second_snapshot)
    check_plan(second_snapshot, second)
    waiting_on_suspend = {x.beneficiary_attempt_id for x in first.suspends if x.beneficiary_attempt_id}
    assert not [x for x in second.suspends if x.beneficiary_attempt_id in waiting_on_suspend]
    waits = {w.attempt_id: w for w in second_snapshot.waiting}
    started = {st.attempt_id for st in second.starts}
    for aid in waiting_on_suspend:
        if aid in started:
            continue  # it found other nodes (e.g. a reservation ahead of it moved to suspending nodes)
        explanation = second.explanations[aid]
        if explanation.code is ReasonCode.WAITING_FOR_SUSPEND:
            continue
        # Nodes that are being freed go to the first waiting attempt in queue order that needs
        # them, not necessarily to the one whose need triggered the suspend: then an attempt
        # ahead of it in its group must be the one waiting for them.
        group = waits[aid].group
        ahead = [
            e
            for other, e in second.explanations.items()
            if waits[other].group == group and 0 < e.position < explanation.position
        ]
        assert any(e.code is ReasonCode.WAITING_FOR_SUSPEND for e in ahead), explanation
