"""Scenario tests of the pure scheduling policy: one test (or a few) per rule of the brief."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

from apps.scheduler.policy import (
    LEVELS,
    Demotion,
    Explanation,
    Holder,
    Infeasible,
    Node,
    Plan,
    PolicyConfig,
    Priority,
    ReasonCode,
    Reservation,
    Running,
    Snapshot,
    Start,
    Suspend,
    SuspendReason,
    Waiting,
    _explain,
    _holder,
    format_duration,
    plan,
)

NOW = 1_000_000.0
HOUR = 3600.0
P = Priority


def nodes(*names: str, group: str = "g", room: str = "", schedulable: bool = True) -> tuple[Node, ...]:
    return tuple(Node(name, group, room, schedulable) for name in names)


def running(
    attempt_id: int,
    user: str,
    held: Iterable[str],
    priority: int = P.NORMAL,
    *,
    group: str = "g",
    ran: float = 2 * HOUR,
    quota_priority: int | None = None,
    checkpoint_ago: float | None = None,
    suspending: bool = False,
) -> Running:
    return Running(
        attempt_id=attempt_id,
        chain_id=f"c{attempt_id}",
        user=user,
        group=group,
        priority=priority,
        quota_priority=priority if quota_priority is None else quota_priority,
        nodes=tuple(held),
        started_at=NOW - ran,
        last_checkpoint_at=None if checkpoint_ago is None else NOW - checkpoint_ago,
        suspending=suspending,
    )


def waiting(
    attempt_id: int,
    user: str,
    n: int = 1,
    priority: int = P.NORMAL,
    *,
    group: str = "g",
    submitted_ago: float = 60.0,
    waited: float | None = None,
    custom_rank: float | None = None,
    environment_ok: bool = True,
) -> Waiting:
    first = NOW - submitted_ago
    return Waiting(
        attempt_id=attempt_id,
        chain_id=f"c{attempt_id}",
        user=user,
        group=group,
        node_count=n,
        priority=priority,
        custom_rank=first if custom_rank is None else custom_rank,
        first_submitted_at=first,
        queued_at=NOW - (submitted_ago if waited is None else waited),
        environment_ok=environment_ok,
    )


def plenty(*users: str, groups: Iterable[str] = ("g",), size: int = 100) -> dict[str, dict[tuple[str, int], int]]:
    return {u: {(g, lvl): size for g in groups for lvl in LEVELS} for u in users}


def snap(
    node_list: Iterable[Node],
    run: Iterable[Running] = (),
    wait: Iterable[Waiting] = (),
    *,
    quotas: Mapping[str, Mapping[tuple[str, int], int]] | None = None,
    usage: Mapping[str, float] | None = None,
    config: PolicyConfig | None = None,
    now: float = NOW,
) -> Snapshot:
    run, wait = tuple(run), tuple(wait)
    if quotas is None:
        quotas = plenty(*sorted({r.user for r in run} | {w.user for w in wait}), groups={n.group for n in node_list})
    return Snapshot(
        now=now,
        nodes=tuple(node_list),
        running=run,
        waiting=wait,
        quotas=quotas,
        usage=usage or {},
        config=config or PolicyConfig(),
    )


def started(result: Plan) -> dict[int, tuple[str, ...]]:
    return {s.attempt_id: s.nodes for s in result.starts}


def code(result: Plan, attempt_id: int) -> ReasonCode:
    return result.explanations[attempt_id].code


# 1. Feasibility ---------------------------------------------------------------------------------


def test_job_bigger_than_its_group_is_infeasible_and_blocks_nobody() -> None:
    result = plan(snap(nodes("a", "b"), wait=[waiting(1, "ann", n=3, submitted_ago=900), waiting(2, "bob", n=1)]))
    assert result.infeasible == (
        Infeasible(1, ReasonCode.GROUP_TOO_SMALL, "Needs 3 nodes but group 'g' has only 2 nodes registered."),
    )
    assert started(result) == {2: ("a",)}
    assert result.explanations[1].position == 0
    assert 2 not in result.explanations


def test_unschedulable_nodes_count_toward_group_size() -> None:
    group = nodes("a") + nodes("b", schedulable=False)
    result = plan(snap(group, wait=[waiting(1, "ann", n=2)]))
    assert result.infeasible == ()
    explanation = result.explanations[1]
    assert explanation.code is ReasonCode.NO_NODES
    assert explanation.message == (
        "Needs 2 nodes but group 'g' has 2 nodes and only 1 is schedulable now (the others are not ready or disabled)."
    )
    assert explanation.position == 1


def test_unknown_group_is_infeasible() -> None:
    result = plan(snap(nodes("a"), wait=[waiting(1, "ann", group="gpu-typo")]))
    assert result.infeasible == (
        Infeasible(1, ReasonCode.GROUP_TOO_SMALL, "Group 'gpu-typo' does not exist: no node is registered in it."),
    )
    assert result.starts == ()


def test_node_count_above_quota_ceiling_is_infeasible() -> None:
    quotas = {"ann": {("g", P.HIGH): 2, ("g", P.NORMAL): 4}}
    result = plan(
        snap(
            nodes("a", "b", "c", "d", "e"),
            wait=[waiting(1, "ann", n=3, priority=P.HIGH), waiting(2, "ann", n=5, priority=P.AUTO)],
            quotas=quotas,
        )
    )
    assert result.infeasible == (
        Infeasible(
            1,
            ReasonCode.QUOTA_CEILING,
            "Needs 3 nodes but ann's quota in 'g' at HIGH is 2 nodes, so it can never start at this level. "
            "Levels with enough quota: NORMAL (4).",
        ),
        Infeasible(
            2, ReasonCode.QUOTA_CEILING, "Needs 5 nodes but ann's largest quota in 'g' at any priority is 4 nodes."
        ),
    )
    assert result.explanations[1].resolved_priority == P.HIGH
    assert result.explanations[2].resolved_priority is None
    assert result.starts == ()


def test_bad_environment_is_infeasible() -> None:
    result = plan(snap(nodes("a"), wait=[waiting(1, "ann", environment_ok=False)]))
    assert result.infeasible == (
        Infeasible(1, ReasonCode.ENVIRONMENT, "Its environment (image) is unknown or ann is not permitted to use it."),
    )
    assert result.starts == ()


# 2. Quota and AUTO ------------------------------------------------------------------------------


def test_quota_counts_running_and_started_jobs_per_level() -> None:
    quotas = {"ann": {("g", P.NORMAL): 3}}
    result = plan(
        snap(
            nodes("a", "b", "c", "d", "e"),
            run=[running(1, "ann", ["a"])],
            wait=[waiting(2, "ann", n=2, submitted_ago=300), waiting(3, "ann", n=1, submitted_ago=200)],
            quotas=quotas,
        )
    )
    assert started(result) == {2: ("b", "c")}
    explanation = result.explanations[3]
    assert explanation.code is ReasonCode.QUOTA
    assert explanation.message == (
        "ann's quota in 'g' at NORMAL is 3 nodes; 3 in use and this job needs 1. It can start when ann's jobs there "
        "free 1."
    )
    assert explanation.holders == (Holder(1, "ann", 1, P.NORMAL), Holder(2, "ann", 2, P.NORMAL))


def test_aged_job_stays_charged_to_its_admission_level() -> None:
    quotas = {"ann": {("g", P.NORMAL): 1, ("g", P.ABOVE_NORMAL): 1}}
    result = plan(
        snap(
            nodes("a", "b"),
            run=[running(1, "ann", ["a"], P.NORMAL, quota_priority=P.ABOVE_NORMAL)],
            wait=[waiting(2, "ann", priority=P.ABOVE_NORMAL)],
            quotas=quotas,
        )
    )
    assert result.starts == ()
    assert code(result, 2) is ReasonCode.QUOTA


def test_auto_takes_the_highest_level_with_quota_left() -> None:
    quotas = {"ann": {("g", P.HIGH): 2, ("g", P.NORMAL): 4, ("g", P.LOW): 8}}
    result = plan(
        snap(
            nodes(*"abcdefgh"),
            run=[running(1, "ann", ["a"], P.HIGH)],
            wait=[
                waiting(2, "ann", n=1, priority=P.AUTO, submitted_ago=500),  # HIGH has 1 left: fits
                waiting(3, "ann", n=2, priority=P.AUTO, submitted_ago=400),  # HIGH is now full: NORMAL
                waiting(4, "ann", n=4, priority=P.AUTO, submitted_ago=300),  # NORMAL has 2 left: LOW
            ],
            quotas=quotas,
        )
    )
    assert [(s.attempt_id, s.priority) for s in result.starts] == [(2, P.HIGH), (3, P.NORMAL), (4, P.LOW)]


def test_auto_without_any_level_left_waits_on_quota() -> None:
    quotas = {"ann": {("g", P.NORMAL): 1}}
    result = plan(
        snap(nodes("a", "b"), run=[running(1, "ann", ["a"])], wait=[waiting(2, "ann", priority=P.AUTO)], quotas=quotas)
    )
    explanation = result.explanations[2]
    assert explanation.code is ReasonCode.QUOTA
    assert explanation.resolved_priority is None
    assert explanation.message == (
        "AUTO found no priority level with 1 node of ann's quota left in 'g' (in use/quota, counting ann's AUTO jobs "
        "ahead of this one: NORMAL 1/1)."
    )
    assert explanation.holders == (Holder(1, "ann", 1, P.NORMAL),)


# 3. Order ---------------------------------------------------------------------------------------


def test_order_is_priority_then_fair_share_then_custom_rank_then_fifo() -> None:
    result = plan(
        snap(
            nodes("a", "b"),
            wait=[
                waiting(1, "ann", priority=P.LOW, submitted_ago=900),
                waiting(2, "bob", submitted_ago=800),  # NORMAL, heavy user
                waiting(3, "cat", submitted_ago=700),  # NORMAL, light user
                waiting(4, "cat", submitted_ago=600, custom_rank=0.0),  # cat moved it to the front
                waiting(5, "bob", submitted_ago=500),
            ],
            usage={"bob": 5000.0, "cat": 10.0},
        )
    )
    assert started(result) == {4: ("a",), 3: ("b",)}
    assert [s.attempt_id for s in result.starts] == [4, 3]
    positions = {aid: e.position for aid, e in result.explanations.items()}
    assert positions == {2: 1, 5: 2, 1: 3}
    assert {code(result, aid) for aid in positions} == {ReasonCode.PRIORITY}
    assert result.explanations[2].message == (
        "Needs 1 node in 'g': 2 were idle but jobs ahead of it in the queue started on 2 of them in this pass; 0 left."
    )
    assert result.explanations[2].holders == (Holder(4, "cat", 1, P.NORMAL), Holder(3, "cat", 1, P.NORMAL))


def test_an_auto_job_takes_the_place_its_rank_gives_it_when_another_job_reorders() -> None:
    # cat's NORMAL jobs 2 and 3 were submitted before AUTO job 4 (which resolves to NORMAL). Job 3's rank
    # (650 s ago) passes none of the others, but it makes cat's NORMAL jobs ranked, so AUTO job 4's own rank
    # (900 s ago) counts: the three take the places 800 / 700 / 600 s ago in rank order 4, 2, 3.
    result = plan(
        snap(
            nodes("a"),
            wait=[
                waiting(2, "cat", submitted_ago=800),
                waiting(3, "cat", submitted_ago=700, custom_rank=NOW - 650),
                waiting(4, "cat", priority=P.AUTO, submitted_ago=600, custom_rank=NOW - 900),
            ],
            quotas={"cat": {("g", P.NORMAL): 10}},
        )
    )
    assert started(result) == {4: ("a",)}
    assert [(aid, e.position) for aid, e in sorted(result.explanations.items())] == [(2, 1), (3, 2)]


def test_swap_places_gives_places_in_rank_order() -> None:
    """The shortcut in ``swap_places`` (nothing moves unless a rank passes another job) against the
    plain rule on random queues of one user's jobs, with equal first submissions and shared ranks."""
    import random

    from apps.scheduler.policy import _Pass

    rng = random.Random(11)
    for case in range(3000):
        jobs = []
        for k in range(rng.randint(2, 7)):
            first = float(rng.choice((100, 200, 300, 400, 500, 600)))
            rank = first if rng.random() < 0.6 else float(rng.choice((0, 150, 200, 350, 700)))
            w = waiting(k + 1, "ann", submitted_ago=NOW - first, custom_rank=rank)
            jobs.append((-P.NORMAL, 0.0, first, k + 1, w))  # an entry: (rank, share, place, attempt_id, waiting)
        mine = list(jobs)
        movers = [e for e in jobs if e[4].custom_rank != e[2]]
        _Pass.swap_places(mine, movers)
        slots = sorted(e[2] for e in jobs)
        by_rank = sorted(jobs, key=lambda e: (e[4].custom_rank, e[2], e[3]))
        expected = {e[3]: slot for slot, e in zip(slots, by_rank, strict=True)}
        assert {e[3]: e[2] for e in mine} == expected, case
        assert [e[3] for e in mine] == [e[3] for e in jobs]  # rewritten where they are


# 4. Gang, whole nodes, rooms --------------------------------------------------------------------


def test_gang_starts_on_all_its_nodes_or_none() -> None:
    result = plan(
        snap(
            nodes("a", "b", "c", "d"),
            run=[running(1, "ann", ["a"], P.HIGH)],
            wait=[waiting(2, "bob", n=4), waiting(3, "bob", n=2)],
        )
    )
    assert started(result) == {3: ("b", "c")}  # the 4-node job took no node, the 2-node one fits
    explanation = result.explanations[2]
    assert explanation.code is ReasonCode.PRIORITY
    assert explanation.message == (
        "Needs 4 nodes in 'g' and 3 are free; 1 of the group's 4 schedulable nodes is held by jobs at NORMAL or "
        "higher, which it may not suspend."
    )
    assert explanation.holders == (Holder(1, "ann", 1, P.HIGH),)
    result = plan(snap(nodes("a", "b", "c", "d"), wait=[waiting(2, "bob", n=4)]))
    assert result.starts == (Start(2, ("a", "b", "c", "d"), P.NORMAL),)


def test_job_prefers_the_best_fitting_single_room() -> None:
    cluster = nodes("a1", "a2", "a3", room="A") + nodes("b1", "b2", room="B")
    two = plan(snap(cluster, wait=[waiting(1, "ann", n=2)]))
    assert started(two) == {1: ("b1", "b2")}  # room B is the tightest fit
    three = plan(snap(cluster, wait=[waiting(1, "ann", n=3)]))
    assert started(three) == {1: ("a1", "a2", "a3")}
    four = plan(snap(cluster, wait=[waiting(1, "ann", n=4)]))
    assert started(four) == {1: ("a1", "a2", "a3", "b1")}  # across rooms: fullest room first
    tie = nodes("x1", "x2", room="X") + nodes("y1", "y2", room="Y")
    assert started(plan(snap(tie, wait=[waiting(1, "ann", n=2)]))) == {1: ("x1", "x2")}  # equal fit: room name


def test_a_node_is_never_given_twice_and_held_nodes_are_never_given() -> None:
    result = plan(
        snap(nodes("a", "b", "c"), run=[running(1, "ann", ["b"])], wait=[waiting(2, "bob"), waiting(3, "cat")])
    )
    assert started(result) == {2: ("a",), 3: ("c",)}


def test_unschedulable_node_removes_capacity() -> None:
    cluster = nodes("a", "b") + nodes("c", schedulable=False)
    result = plan(snap(cluster, wait=[waiting(1, "ann", submitted_ago=300), waiting(2, "bob"), waiting(3, "cat")]))
    assert started(result) == {1: ("a",), 2: ("b",)}
    assert code(result, 3) is ReasonCode.PRIORITY


# 5. Preemption ------------------------------------------------------------------------------------


def test_preemption_waits_for_the_victims_minimum_run_time_then_suspends() -> None:
    cluster = nodes("a", "b")
    run = [running(1, "ann", ["a"], P.HIGH), running(2, "bob", ["b"], P.LOW, ran=100)]
    wait = [waiting(3, "cat", priority=P.HIGH)]
    five = PolicyConfig(min_run_seconds=300)
    early = plan(snap(cluster, run, wait, config=five))
    assert early.suspends == ()
    assert early.keeps == (1, 2)
    explanation = early.explanations[3]
    assert explanation.code is ReasonCode.MIN_RUNTIME
    assert explanation.eta == NOW + 200
    assert explanation.holders == (Holder(2, "bob", 1, P.LOW),)
    assert explanation.message == (
        "Can suspend lower-priority jobs in 'g' (#2) once they have run the minimum 5m: in about 3m 20s."
    )

    later = plan(snap(cluster, run, wait, now=NOW + 200, config=five))
    assert later.suspends == (Suspend(2, SuspendReason.PREEMPTED, 3),)
    assert later.starts == ()  # it starts once the victim has stopped
    assert later.keeps == (1,)
    assert later.explanations[3].code is ReasonCode.WAITING_FOR_SUSPEND
    assert later.explanations[3].holders == (Holder(2, "bob", 1, P.LOW),)


def test_never_preempts_equal_or_higher_priority() -> None:
    run = [running(1, "cat", ["a"]), running(2, "bob", ["b"], P.HIGH)]
    result = plan(
        snap(
            nodes("a", "b"),
            run,
            [waiting(3, "cat", waited=5 * HOUR)],
            config=PolicyConfig(reservation_wait_seconds=math.inf),
        )
    )
    assert result.suspends == ()
    explanation = result.explanations[3]
    assert explanation.code is ReasonCode.PRIORITY
    assert explanation.message == (
        "Needs 1 node in 'g' and 0 are free; 2 of the group's 2 schedulable nodes are held by jobs at NORMAL or "
        "higher, which it may not suspend."
    )
    assert explanation.holders == (Holder(2, "bob", 1, P.HIGH), Holder(1, "cat", 1, P.NORMAL))  # highest first


def test_victims_lose_the_least_work() -> None:
    cluster = nodes("a", "b", "c", "d")
    run = [
        running(1, "ann", ["a"], P.LOW, checkpoint_ago=3000),
        running(2, "ann", ["b"], P.LOW, checkpoint_ago=60),  # saved a minute ago: cheapest
        running(3, "bob", ["c"], P.BELOW_NORMAL, checkpoint_ago=1),  # higher priority: spared
        running(4, "bob", ["d"], P.LOW, ran=4 * HOUR),  # never checkpointed: lost since its start
    ]
    result = plan(snap(cluster, run, [waiting(5, "cat", n=2, priority=P.HIGH)]))
    assert result.suspends == (
        Suspend(2, SuspendReason.PREEMPTED, 5),
        Suspend(1, SuspendReason.PREEMPTED, 5),
    )
    # without checkpoints, the latest start loses least
    run = [running(1, "ann", ["a"], P.LOW, ran=2 * HOUR), running(2, "ann", ["b"], P.LOW, ran=HOUR)]
    result = plan(snap(nodes("a", "b"), run, [waiting(5, "cat", priority=P.HIGH)]))
    assert result.suspends == (Suspend(2, SuspendReason.PREEMPTED, 5),)


def test_never_more_victims_than_needed() -> None:
    cluster = nodes("a", "b", "c", "d", "e", "f", "g2")
    run = [
        running(1, "ann", ["a"], P.LOW, checkpoint_ago=10),
        running(2, "ann", ["b"], P.LOW, checkpoint_ago=20),
        running(3, "bob", ["c", "d", "e", "f"], P.LOW, checkpoint_ago=30),
        running(4, "bob", ["g2"], P.HIGH),
    ]
    result = plan(snap(cluster, run, [waiting(5, "cat", n=4, priority=P.NORMAL, waited=20 * 60)]))
    # greedy takes 1, 2, then 3 (4 nodes); 1 and 2 are then not needed
    assert result.suspends == (Suspend(3, SuspendReason.PREEMPTED, 5),)
    assert result.keeps == (1, 2, 4)


def test_same_user_may_preempt_its_own_lower_priority_job() -> None:
    result = plan(snap(nodes("a"), [running(1, "ann", ["a"], P.LOW)], [waiting(2, "ann", priority=P.HIGH)]))
    assert result.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)


def test_preemption_stays_in_the_group() -> None:
    cluster = nodes("a", group="g") + nodes("x", group="h")
    run = [running(1, "ann", ["a"], P.EXTREME_HIGH, group="g"), running(2, "bob", ["x"], P.LOW, group="h")]
    result = plan(snap(cluster, run, [waiting(3, "cat", priority=P.HIGH, group="g")]))
    assert result.suspends == ()
    assert code(result, 3) is ReasonCode.PRIORITY


def test_waiting_for_suspend_on_the_next_pass_picks_no_extra_victims() -> None:
    cluster = nodes("a", "b", "c")
    run = [running(1, "ann", ["a"], P.LOW), running(2, "ann", ["b"], P.LOW), running(3, "ann", ["c"], P.LOW)]
    wait = [waiting(4, "bob", n=2, priority=P.HIGH), waiting(5, "cat", n=1, priority=P.HIGH, submitted_ago=30)]
    first = plan(snap(cluster, run, wait))
    assert first.suspends == (
        Suspend(1, SuspendReason.PREEMPTED, 4),
        Suspend(2, SuspendReason.PREEMPTED, 4),
        Suspend(3, SuspendReason.PREEMPTED, 5),
    )

    # the driver recorded the suspends; the jobs are still saving their checkpoints
    suspending = [
        running(1, "ann", ["a"], P.LOW, suspending=True),
        running(2, "ann", ["b"], P.LOW, suspending=True),
        running(3, "ann", ["c"], P.LOW, suspending=True),
    ]
    second = plan(snap(cluster, suspending, wait, now=NOW + 10))
    assert second.suspends == ()
    assert second.starts == ()
    assert second.keeps == (1, 2, 3)
    assert code(second, 4) is ReasonCode.WAITING_FOR_SUSPEND
    assert second.explanations[4].holders == (Holder(1, "ann", 1, P.LOW), Holder(2, "ann", 1, P.LOW))
    assert second.explanations[4].message == (
        "2 of the 2 nodes it needs in 'g' are being freed by suspending job(s) #1, #2; it starts once they have "
        "stopped."
    )
    assert code(second, 5) is ReasonCode.WAITING_FOR_SUSPEND
    assert second.explanations[5].holders == (Holder(3, "ann", 1, P.LOW),)


def test_surplus_nodes_of_a_big_victim_serve_the_next_waiter() -> None:
    cluster = nodes("a", "b", "c", "d")
    run = [running(1, "ann", ["a", "b", "c", "d"], P.LOW)]
    wait = [waiting(2, "bob", n=1, priority=P.HIGH, submitted_ago=90), waiting(3, "cat", n=3, priority=P.HIGH)]
    result = plan(snap(cluster, run, wait))
    assert result.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)
    assert code(result, 3) is ReasonCode.WAITING_FOR_SUSPEND
    assert result.explanations[3].holders == (Holder(1, "ann", 4, P.LOW),)


# 6. Time-sharing and aging ----------------------------------------------------------------------


HOUR_SLICE = PolicyConfig(time_slice_seconds=HOUR)  # the time-share rules with a short slice (default: 6 h)


def test_equal_priority_jobs_of_two_users_time_share() -> None:
    cluster = nodes("a")
    run = [running(1, "ann", ["a"], ran=2 * HOUR)]
    result = plan(snap(cluster, run, [waiting(2, "bob", waited=20 * 60)], config=HOUR_SLICE))
    assert result.suspends == (Suspend(1, SuspendReason.TIME_SHARE, 2),)
    assert code(result, 2) is ReasonCode.WAITING_FOR_SUSPEND

    # before bob has waited 15 minutes: a turn is announced, with its time
    early = plan(snap(cluster, run, [waiting(2, "bob", waited=5 * 60)], config=HOUR_SLICE))
    assert early.suspends == ()
    explanation = early.explanations[2]
    assert explanation.code is ReasonCode.TIME_SLICE
    assert explanation.eta == NOW + 10 * 60
    assert explanation.message == (
        "Will get a time-share turn in 'g' in about 10m: equal-priority (NORMAL) jobs of other users (#1) may be "
        "suspended once they have run a 1h slice and this job has waited 15m."
    )
    # a runner still inside its slice: the turn comes when the slice ends
    young = plan(
        snap(cluster, [running(1, "ann", ["a"], ran=HOUR - 60)], [waiting(2, "bob", waited=HOUR)], config=HOUR_SLICE)
    )
    assert young.explanations[2].code is ReasonCode.TIME_SLICE
    assert young.explanations[2].eta == NOW + 60


def test_time_sharing_never_between_jobs_of_the_same_user() -> None:
    no_reservation = PolicyConfig(reservation_wait_seconds=math.inf)
    run = [running(1, "ann", ["a"], ran=5 * HOUR)]
    result = plan(snap(nodes("a"), run, [waiting(2, "ann", waited=5 * HOUR)], config=no_reservation))
    assert result.suspends == ()
    assert code(result, 2) is ReasonCode.PRIORITY
    # ann's own runner is the longest running, yet bob's is the one time-shared
    run = [running(1, "ann", ["a"], ran=5 * HOUR), running(3, "bob", ["b"], ran=2 * HOUR)]
    usage = {"ann": 1.0, "bob": 900.0}
    result = plan(snap(nodes("a", "b"), run, [waiting(2, "ann", waited=HOUR)], usage=usage, config=HOUR_SLICE))
    assert result.suspends == (Suspend(3, SuspendReason.TIME_SHARE, 2),)


def test_time_sharing_takes_from_the_heaviest_user_then_the_longest_runner() -> None:
    cluster = nodes("a", "b", "c")
    run = [
        running(1, "ann", ["a"], ran=3 * HOUR),
        running(2, "bob", ["b"], ran=2 * HOUR),
        running(3, "bob", ["c"], ran=4 * HOUR),
    ]
    result = plan(
        snap(cluster, run, [waiting(4, "cat", waited=HOUR)], usage={"ann": 10.0, "bob": 99.0}, config=HOUR_SLICE)
    )
    assert result.suspends == (Suspend(3, SuspendReason.TIME_SHARE, 4),)


def test_lower_priority_victims_come_before_time_sharing() -> None:
    cluster = nodes("a", "b")
    run = [running(1, "ann", ["a"], ran=3 * HOUR), running(2, "bob", ["b"], P.LOW, ran=HOUR)]
    result = plan(snap(cluster, run, [waiting(3, "cat", waited=HOUR)]))
    assert result.suspends == (Suspend(2, SuspendReason.PREEMPTED, 3),)


def test_above_normal_ages_to_normal_after_thirty_minutes() -> None:
    cluster = nodes("a", "b")
    run = [
        running(1, "ann", ["a"], P.ABOVE_NORMAL, ran=31 * 60, checkpoint_ago=30),
        running(2, "bob", ["b"], P.ABOVE_NORMAL, ran=29 * 60, checkpoint_ago=30),
    ]
    result = plan(snap(cluster, run, [waiting(3, "cat", priority=P.ABOVE_NORMAL, waited=20 * 60)]))
    assert result.demotions == (Demotion(1, P.NORMAL),)
    # now NORMAL, strictly lower than the waiter: it may be preempted
    assert result.suspends == (Suspend(1, SuspendReason.PREEMPTED, 3),)

    # a NORMAL waiter may not preempt it, but time-shares with it once its slice is over
    run = [running(1, "ann", ["a"], P.ABOVE_NORMAL, ran=2 * HOUR), running(2, "bob", ["b"], P.ABOVE_NORMAL, ran=60)]
    result = plan(snap(cluster, run, [waiting(3, "cat", waited=HOUR)], config=HOUR_SLICE))
    assert result.demotions == (Demotion(1, P.NORMAL),)
    assert result.suspends == (Suspend(1, SuspendReason.TIME_SHARE, 3),)

    young = plan(snap(cluster, run[1:], [waiting(3, "cat", waited=HOUR)]))
    assert young.demotions == ()


# 7. Backfill and reservations ---------------------------------------------------------------------


def test_idle_nodes_go_to_jobs_that_fit_behind_a_blocked_one() -> None:
    cluster = nodes("a", "b", "c", "d")
    run = [running(1, "ann", ["a", "b"], P.HIGH)]
    wait = [waiting(2, "bob", n=4, submitted_ago=600), waiting(3, "cat"), waiting(4, "cat", submitted_ago=30)]
    result = plan(snap(cluster, run, wait))
    assert started(result) == {3: ("c",), 4: ("d",)}
    assert result.explanations[2].position == 1


def test_a_starving_job_gets_a_reservation() -> None:
    cluster = nodes("a", "b", "c", "d", "e")
    # bob's job can start in 3m 20s, once ann's LOW job has run its minimum: the 2 idle nodes wait for it
    run = [running(1, "ann", ["a", "b"], P.HIGH), running(2, "ann", ["e"], P.LOW, ran=100)]
    wait = [
        waiting(3, "bob", n=3, submitted_ago=40 * 60),
        waiting(4, "cat"),
        waiting(5, "cat", n=2, priority=P.NORMAL, submitted_ago=30),
    ]
    result = plan(snap(cluster, run, wait))
    assert result.starts == ()
    assert result.suspends == ()
    assert result.reservations == (Reservation(3, "g", 2, 0, start_at=NOW + 13 * 60 + 20),)
    reserver = result.explanations[3]
    assert reserver.code is ReasonCode.MIN_RUNTIME
    assert reserver.message == (
        "Can suspend lower-priority jobs in 'g' (#2) once they have run the minimum 15m: in about 13m 20s. It has "
        "waited 40m, so it holds the reservation of 'g' (2 idle or being freed now): jobs behind it may not start "
        "there or suspend others until it starts."
    )
    for aid, position in ((4, 2), (5, 3)):
        blocked = result.explanations[aid]
        assert blocked.code is ReasonCode.RESERVED
        assert blocked.message == (
            "Job #3 (bob, waiting 40m for 3 nodes) is ahead of it and holds the reservation of 'g' (2 idle or being "
            "freed now): until it starts, jobs behind it neither start on idle nodes nor suspend others there."
        )
        assert blocked.holders == (Holder(3, "bob", 3, P.NORMAL),)
        assert blocked.position == position

    # needing 4, it cannot start before the HIGH job ends, whenever that is: the idle nodes are not
    # kept idle for it (issue 11, bug 5), but nobody behind it may suspend in the group
    run = [running(1, "ann", ["a", "b"], P.HIGH), running(2, "ann", ["e"], P.LOW)]
    wait[0] = waiting(3, "bob", n=4, submitted_ago=40 * 60)
    result = plan(snap(cluster, run, wait))
    assert started(result) == {4: ("c",)}
    assert result.suspends == ()
    assert result.reservations == (Reservation(3, "g", 0, 0),)
    assert result.explanations[3].code is ReasonCode.PRIORITY
    assert result.explanations[3].message.endswith(
        "It has waited 40m, so it holds the reservation of 'g': jobs behind it may not suspend others there until "
        "it starts. Idle nodes stay open to them, as it cannot start within 30m."
    )
    assert result.explanations[5].code is ReasonCode.RESERVED
    assert result.explanations[5].message == (
        "Job #3 (bob, waiting 40m for 4 nodes) is ahead of it and holds the reservation of 'g': until it starts, "
        "jobs behind it may not suspend others there, and 1 idle is not enough for this one."
    )
    # the same job after 10 minutes only: no reservation, backfill and preemption go on (the job behind it
    # has waited past preempt_wait_seconds)
    wait[0] = waiting(3, "bob", n=4, submitted_ago=10 * 60)
    wait[2] = dataclasses.replace(wait[2], queued_at=NOW - 20 * 60)
    result = plan(snap(cluster, run, wait))
    assert result.reservations == ()
    assert started(result) == {4: ("c",)}
    assert result.suspends == (Suspend(2, SuspendReason.PREEMPTED, 5),)


def test_idle_nodes_held_for_gangs_waiting_on_suspends_is_fragmentation() -> None:
    cluster = nodes("a", "b", "c", "d", "e")
    run = [running(1, "ann", ["a"], P.LOW)]
    wait = [waiting(2, "bob", n=5, priority=P.HIGH), waiting(3, "cat", n=2)]
    result = plan(snap(cluster, run, wait))
    assert result.starts == ()
    assert result.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)
    assert result.explanations[2].message == (
        "Asked 1 job to suspend (#1) to free 1 node in 'g'; it starts once it has stopped. 4 nodes idle in 'g' are "
        "held for it meanwhile."
    )
    explanation = result.explanations[3]
    assert explanation.code is ReasonCode.FRAGMENTATION
    assert explanation.message == (
        "4 nodes of 'g' are idle, enough for its 2, but 4 of them are held for jobs ahead of it (#2) until the jobs "
        "they suspended have stopped; 0 left."
    )
    assert explanation.holders == (Holder(2, "bob", 5, P.HIGH),)


# 8. Explanations ------------------------------------------------------------------------------------


def test_every_waiting_job_is_explained_with_its_queue_position() -> None:
    cluster = nodes("a", "b") + nodes("x", group="h")
    run = [running(1, "ann", ["a", "b"], P.HIGH), running(2, "ann", ["x"], P.HIGH, group="h")]
    wait = [waiting(i, "bob", group="g" if i % 2 else "h", submitted_ago=1000 - i) for i in range(3, 9)]
    result = plan(snap(cluster, run, wait))
    assert {aid: e.position for aid, e in result.explanations.items()} == {
        3: 1,
        5: 2,
        7: 3,
        4: 1,
        6: 2,
        8: 3,
    }


def test_a_group_without_schedulable_nodes_says_so() -> None:
    result = plan(snap(nodes("a", "b", schedulable=False), wait=[waiting(1, "ann")]))
    assert result.explanations[1] == Explanation(
        1,
        ReasonCode.NO_NODES,
        "Needs 1 node but group 'g' has 2 nodes and none is schedulable now (the others are not ready or disabled).",
        1,
        (),
        P.NORMAL,
    )


def test_fast_factories_match_the_named_tuples() -> None:
    assert _holder(1, "ann", 2, P.HIGH) == Holder(1, "ann", 2, P.HIGH)
    holders = (Holder(1, "ann", 2, P.HIGH),)
    assert _explain(7, ReasonCode.QUOTA, "m", 3, holders, 10, 5.0) == Explanation(
        7, ReasonCode.QUOTA, "m", 3, holders, 10, 5.0
    )


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 0.2, 59, 60, 95, 3600, 3660, 49 * 3600)] == [
        "0s",
        "1s",
        "59s",
        "1m",
        "1m 35s",
        "1h",
        "1h 01m",
        "2d 1h",
    ]
