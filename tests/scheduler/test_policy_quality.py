"""Issue 11's scheduling-quality bugs, one test (or two) each, on the pure policy and on tiny simulated traces.

Each test failed on the policy of 2026-12-02 (see docs/scheduling-quality.md for the numbers on a
full trace); the simulated ones replay the issue's two-job scenarios through bench/simulate.py.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from apps.scheduler.policy import (
    Demotion,
    PolicyConfig,
    ReasonCode,
    Start,
    Suspend,
    SuspendReason,
    Waiting,
    plan,
)
from bench.simulate import GROUP, JobSpec, RotaPolicy, Trace, simulate
from tests.scheduler.test_policy import HOUR, NOW, P, code, nodes, running, snap, started, waiting

MIN = 60.0
EIGHT = tuple(f"n{i}" for i in range(8))


def two_job_trace(priority: int, *, work: float, users: tuple[str, str] = ("ann", "bob"), quota: int = 8) -> Trace:
    jobs = (
        JobSpec(1, users[0], 0.0, 8, work, priority),
        JobSpec(2, users[1], 60.0, 8, work, priority),
    )
    quotas = {u: {(GROUP, int(lvl)): quota for lvl in (P.ABOVE_NORMAL, P.NORMAL)} for u in set(users)}
    return Trace(jobs, quotas, 48 * HOUR, nodes=8, rooms=1, name="two jobs")


# 1. Aging livelock ---------------------------------------------------------------------------------


def test_aging_counts_the_chains_run_time_not_the_attempts() -> None:
    # 10 minutes into this attempt, but the chain ran 25 minutes before: 35 > 30 minutes
    run = [running(1, "ann", ["a"], P.ABOVE_NORMAL, ran=10 * MIN)]
    run[0] = dataclasses.replace(run[0], chain_ran_before=25 * MIN)
    result = plan(snap(nodes("a"), run))
    assert result.demotions == (Demotion(1, P.NORMAL),)


def test_a_requeued_attempt_keeps_its_demoted_level() -> None:
    # ann's job 1 aged before it was suspended; her fresh ABOVE_NORMAL job 2 goes first
    quotas = {"ann": {("g", P.ABOVE_NORMAL): 16, ("g", P.NORMAL): 16}}
    old = waiting(1, "ann", n=8, priority=P.ABOVE_NORMAL, submitted_ago=5 * HOUR, waited=60)
    old = dataclasses.replace(old, chain_ran=2 * HOUR)
    fresh = waiting(2, "ann", n=8, priority=P.ABOVE_NORMAL, submitted_ago=HOUR)
    result = plan(snap(nodes(*EIGHT), wait=[old, fresh], quotas=quotas))
    assert result.starts == (Start(2, EIGHT, P.ABOVE_NORMAL),)
    assert result.explanations[1].resolved_priority == P.NORMAL

    # alone, it starts at NORMAL while charged to its ABOVE_NORMAL quota
    result = plan(snap(nodes(*EIGHT), wait=[old], quotas=quotas))
    assert result.starts == (Start(1, EIGHT, P.ABOVE_NORMAL, effective_priority=P.NORMAL),)


def test_two_users_above_normal_gangs_do_not_preempt_each_other_forever() -> None:
    m = simulate(two_job_trace(int(P.ABOVE_NORMAL), work=12 * HOUR), RotaPolicy(), drain=0.0)
    assert m.completed == 2
    assert m.suspensions <= 6
    assert m.lost_pct < 5.0


def test_one_users_two_above_normal_gangs_both_run() -> None:
    m = simulate(two_job_trace(int(P.ABOVE_NORMAL), work=6 * HOUR, users=("ann", "ann"), quota=16), RotaPolicy())
    assert m.completed == 2
    assert m.suspensions <= 2


# 2. Beneficiary keeps its claim --------------------------------------------------------------------


def test_nodes_freed_for_a_job_go_to_that_job() -> None:
    # bob's job 2 had ann's job suspended for it; cat's newer job 3 is ahead in fair-share order now
    claimant = waiting(2, "bob", n=2, submitted_ago=HOUR, waited=HOUR)
    claimant = dataclasses.replace(claimant, claim=True)
    newer = waiting(3, "cat", n=2, submitted_ago=60)
    result = plan(snap(nodes("a", "b"), wait=[claimant, newer], usage={"bob": 50.0, "cat": 0.0}))
    assert started(result) == {2: ("a", "b")}
    assert code(result, 3) is not ReasonCode.WAITING_FOR_SUSPEND


# 3. Time-share ping-pong ---------------------------------------------------------------------------


def test_time_slices_are_hours_by_default() -> None:
    run = [running(1, "ann", list(EIGHT), ran=90 * MIN, checkpoint_ago=60)]
    result = plan(snap(nodes(*EIGHT), run, [waiting(2, "bob", n=8, waited=90 * MIN)]))
    assert result.suspends == ()
    assert code(result, 2) is ReasonCode.TIME_SLICE


def test_two_users_normal_gangs_take_few_long_turns() -> None:
    m = simulate(two_job_trace(int(P.NORMAL), work=12 * HOUR), RotaPolicy(), drain=0.0)
    assert m.completed == 2
    assert m.suspensions <= 6
    assert m.lost_pct < 3.0


def test_time_sharing_gives_turns_to_the_lighter_user_only() -> None:
    run = [running(1, "ann", ["a"], ran=9 * HOUR, checkpoint_ago=30)]
    heavy = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=HOUR)], usage={"ann": 10.0, "bob": 500.0}))
    assert heavy.suspends == ()
    light = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=HOUR)], usage={"ann": 500.0, "bob": 10.0}))
    assert light.suspends == (Suspend(1, SuspendReason.TIME_SHARE, 2),)


def test_time_sharing_waits_for_a_fresh_checkpoint() -> None:
    run = [running(1, "ann", ["a"], ran=9 * HOUR, checkpoint_ago=10 * MIN)]
    result = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=HOUR)]))
    assert result.suspends == ()
    explanation = result.explanations[2]
    assert explanation.code is ReasonCode.CHECKPOINT
    assert explanation.eta == NOW + 20 * MIN  # its checkpoint is then 30 minutes old: no longer waited for
    assert explanation.message.startswith(
        "Can suspend #1 (NORMAL) in 'g' once it has saved a checkpoint, so that little work is lost. It has been "
        "asked to save one now. At the latest in about 20m (a checkpoint 30m old). It has waited 1h, so it holds "
        "the reservation"
    )
    assert result.checkpoint_requests == (1,)  # rota.job.checkpoint_requested() is True in that job now
    # an urgent (HIGH) waiter does not wait: it suspends the cheapest lower-priority job at once
    low = [running(1, "ann", ["a"], P.LOW, ran=9 * HOUR, checkpoint_ago=10 * MIN)]
    urgent = plan(snap(nodes("a"), low, [waiting(2, "bob", priority=P.HIGH)]))
    assert urgent.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)


def test_a_small_waiter_never_time_shares_a_much_larger_gang() -> None:
    run = [running(1, "ann", list(EIGHT), ran=9 * HOUR, checkpoint_ago=60)]
    result = plan(snap(nodes(*EIGHT), run, [waiting(2, "bob", n=1, waited=9 * HOUR)]))
    assert result.suspends == ()


# 4. Victim cost -----------------------------------------------------------------------------------


def test_victim_cost_is_nodes_times_work_since_checkpoint() -> None:
    big = tuple(f"b{i}" for i in range(32))
    run = [
        running(1, "ann", big, P.LOW, checkpoint_ago=60),  # 32 x (1 + 5) node-minutes
        running(2, "bob", ["s"], P.LOW, checkpoint_ago=20 * MIN),  # 1 x (20 + 5)
    ]
    result = plan(snap(nodes(*big, "s"), run, [waiting(3, "cat", priority=P.HIGH)]))
    assert result.suspends == (Suspend(2, SuspendReason.PREEMPTED, 3),)


# 5. Reservation -------------------------------------------------------------------------------------


def test_reservation_does_not_idle_nodes_it_cannot_use_soon() -> None:
    # a day-long HIGH job holds 6 of 8 nodes; bob's 4-node job has waited 2 h
    run = [running(1, "ann", EIGHT[:6], P.HIGH, ran=HOUR)]
    wait = [waiting(2, "bob", n=4, waited=2 * HOUR), waiting(3, "cat", submitted_ago=60), waiting(4, "dan")]
    result = plan(snap(nodes(*EIGHT), run, wait))
    assert set(started(result)) == {3, 4}


def test_reservation_holds_against_a_newer_job_ahead_in_fair_share_order() -> None:
    # bob's 4-node job has waited 2 h; ann's LOW job frees 2 nodes; cat (lighter user) just submitted 2 nodes
    run = [running(1, "ann", ["a", "b"], P.LOW, suspending=True), running(5, "dan", ["e", "f", "g", "h"], P.HIGH)]
    wait = [waiting(2, "bob", n=4, waited=2 * HOUR), waiting(3, "cat", n=2, submitted_ago=60)]
    cluster = nodes("a", "b", "c", "d", "e", "f", "g", "h")
    result = plan(snap(cluster, run, wait, usage={"bob": 500.0, "cat": 0.0}))
    assert started(result) == {}
    assert code(result, 2) is ReasonCode.WAITING_FOR_SUSPEND


# 6. custom_rank only orders a user's own jobs ----------------------------------------------------------


def test_custom_rank_does_not_jump_other_users() -> None:
    wait = [
        waiting(1, "ann", submitted_ago=60, custom_rank=-1e300),
        waiting(2, "bob", submitted_ago=5 * MIN),
    ]
    result = plan(snap(nodes("a"), wait=wait))
    assert started(result) == {2: ("a",)}


def test_custom_rank_reorders_the_users_own_jobs() -> None:
    wait = [
        waiting(1, "ann", submitted_ago=10 * MIN),
        waiting(2, "ann", submitted_ago=60, custom_rank=-1e300),
        waiting(3, "bob", submitted_ago=5 * MIN),
    ]
    result = plan(snap(nodes("a"), wait=wait))
    assert started(result) == {2: ("a",)}  # takes ann's earliest place, ahead of bob


# 7. Quota lowered below use -----------------------------------------------------------------------------


def test_quota_lowered_below_use_suspends_the_excess() -> None:
    run = [
        running(1, "ann", ["a", "b"], checkpoint_ago=30 * MIN),
        running(2, "ann", ["c"], checkpoint_ago=MIN),
        running(3, "ann", ["d"], checkpoint_ago=2 * MIN),
    ]
    quotas = {"ann": {("g", P.NORMAL): 2}}
    result = plan(snap(nodes("a", "b", "c", "d"), run, quotas=quotas))
    assert result.suspends == (
        Suspend(2, SuspendReason.OVER_QUOTA, 0),
        Suspend(3, SuspendReason.OVER_QUOTA, 0),
    )


# 8. Prefer waiting a little for the cheap victim ----------------------------------------------------------


def test_preemption_waits_briefly_for_a_lower_priority_victim() -> None:
    run = [
        running(1, "ann", ["a"], P.NORMAL, ran=2 * HOUR, checkpoint_ago=MIN),
        running(2, "ann", ["b"], P.LOW, ran=10 * MIN),  # may be suspended in 5 minutes
    ]
    result = plan(snap(nodes("a", "b"), run, [waiting(3, "bob", priority=P.HIGH)]))
    assert result.suspends == ()
    explanation = result.explanations[3]
    assert explanation.code is ReasonCode.MIN_RUNTIME
    assert explanation.eta == NOW + 5 * MIN
    assert "#2 (LOW)" in explanation.message and "#1 (NORMAL)" in explanation.message


def test_no_reservation_config_still_backfills() -> None:
    cfg = PolicyConfig(reservation_wait_seconds=math.inf)
    result = plan(snap(nodes("a"), wait=[waiting(1, "ann")], config=cfg))
    assert started(result) == {1: ("a",)}


def test_the_reservation_and_custom_rank_together_do_not_depend_on_input_order() -> None:
    # bob's ranked job takes his earliest place; the longest waiter (job 1) is the one promoted
    cfg = PolicyConfig(reservation_wait_seconds=0.0)
    run = [running(9, "ann", ["a"], P.HIGH)]
    wait = [
        waiting(1, "bob", submitted_ago=HOUR, waited=HOUR),
        waiting(2, "bob", submitted_ago=60, waited=60, custom_rank=-1.0),
        waiting(3, "cat", submitted_ago=30 * MIN, waited=30 * MIN),
    ]
    forward = plan(snap(nodes("a"), run, wait, config=cfg, usage={"bob": 5.0, "cat": 1.0}))
    backward = plan(snap(nodes("a"), run, wait[::-1], config=cfg, usage={"bob": 5.0, "cat": 1.0}))
    assert forward == backward
    assert forward.reservations[0].attempt_id == 1
    assert [forward.explanations[a].position for a in (1, 2, 3)] == [1, 3, 2]


# Suspend where it pays (after issue 11's first round) -------------------------------------------------


def test_a_non_urgent_job_lets_nodes_free_up_for_a_while_before_suspending() -> None:
    run = [running(1, "ann", ["a"], P.LOW, ran=HOUR, checkpoint_ago=30)]
    early = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=5 * MIN)]))
    assert early.suspends == ()
    explanation = early.explanations[2]
    assert explanation.code is ReasonCode.PREEMPT_WAIT
    assert explanation.eta == NOW + 10 * MIN
    assert explanation.message == (
        "Will suspend #1 (LOW) in 'g' in about 10m unless 1 node free up before: below HIGH a job waits 15m "
        "before suspending others, as jobs end every few minutes and a suspension costs a restart."
    )
    assert [h.attempt_id for h in explanation.holders] == [1]
    # once it has waited 15 minutes it suspends
    later = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=15 * MIN)]))
    assert later.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)
    # a HIGH (urgent) job does not wait
    urgent = plan(snap(nodes("a"), run, [waiting(2, "bob", priority=P.HIGH, waited=0.0)]))
    assert urgent.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)
    # switched off, the old behaviour
    off = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=0.0)], config=PolicyConfig(preempt_wait_seconds=0)))
    assert off.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)


def test_stale_victims_are_asked_to_checkpoint_once_the_waiter_may_suspend_them() -> None:
    run = [running(1, "ann", ["a"], P.LOW, ran=HOUR, checkpoint_ago=10 * MIN)]
    # within the preemption wait: no request yet (a checkpoint saved now would be stale by then)
    early = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=5 * MIN)]))
    assert (early.suspends, early.checkpoint_requests) == ((), ())
    assert early.explanations[2].code is ReasonCode.CHECKPOINT
    later = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=20 * MIN)]))
    assert (later.suspends, later.checkpoint_requests) == ((), (1,))
    assert "It has been asked to save one now." in later.explanations[2].message
    # it reported one: suspended at once
    saved = [dataclasses.replace(run[0], last_checkpoint_at=NOW - 20)]
    done = plan(snap(nodes("a"), saved, [waiting(2, "bob", waited=21 * MIN)]))
    assert (done.suspends, done.checkpoint_requests) == ((Suspend(1, SuspendReason.PREEMPTED, 2),), ())
    # an urgent waiter takes the cheapest victim at once and asks nothing
    urgent = plan(snap(nodes("a"), run, [waiting(2, "bob", priority=P.HIGH)]))
    assert (urgent.suspends, urgent.checkpoint_requests) == ((Suspend(1, SuspendReason.PREEMPTED, 2),), ())
    # switched off: the waiter waits for the job's own schedule, asking nothing
    off = PolicyConfig(request_checkpoints=False)
    quiet = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=20 * MIN)], config=off))
    assert (quiet.suspends, quiet.checkpoint_requests) == ((), ())
    assert "asked" not in quiet.explanations[2].message


def test_a_job_waiting_past_the_starvation_time_goes_ahead_of_fair_share() -> None:
    usage = {"ann": 1e6, "bob": 0.0}  # ann is the heavy user
    wait = [waiting(1, "ann", submitted_ago=7 * HOUR), waiting(2, "bob", submitted_ago=MIN)]
    # reservations off so that only the order is tested
    cfg = PolicyConfig(reservation_wait_seconds=math.inf)
    result = plan(snap(nodes("a"), (), wait, usage=usage, config=cfg))
    assert started(result) == {1: ("a",)}
    # before 6 hours fair share decides: bob, the lighter user, first
    wait[0] = waiting(1, "ann", submitted_ago=5 * HOUR)
    result = plan(snap(nodes("a"), (), wait, usage=usage, config=cfg))
    assert started(result) == {2: ("a",)}


def test_a_checkpoint_request_lets_the_waiting_job_in_sooner_at_no_extra_loss() -> None:
    jobs = (
        JobSpec(1, "ann", 0.0, 2, 3 * HOUR, int(P.NORMAL)),
        JobSpec(2, "bob", 40 * MIN, 2, HOUR, int(P.ABOVE_NORMAL)),
    )
    quotas = {u: {(GROUP, int(lvl)): 2 for lvl in (P.ABOVE_NORMAL, P.NORMAL)} for u in ("ann", "bob")}
    trace = Trace(jobs, quotas, 6 * HOUR, nodes=2, rooms=1, name="ask")
    asked = simulate(trace, RotaPolicy(), checkpoint_response=2 * MIN)
    ignored = simulate(trace, RotaPolicy(), checkpoint_response=math.inf)
    # bob may suspend ann at 55 min (15 min wait); ann's last checkpoint (30 min of work, at 35 min) is stale:
    # asked, ann saves at 57 min and is suspended then, freeing the nodes at 58; ignoring the request, ann
    # is suspended after its next own checkpoint at 65 min. Either way ann loses the grace and a restart.
    assert asked.waits["ABOVE_NORMAL"] == [18 * MIN]
    assert ignored.waits["ABOVE_NORMAL"] == [26 * MIN]
    assert (asked.checkpoint_requests, ignored.checkpoint_requests) == (1, 0)
    assert asked.lost_gpu_h == pytest.approx((1 + 5) * 2 * 8 / 60)
    assert ignored.lost_gpu_h == pytest.approx(asked.lost_gpu_h)


def test_a_restarted_job_is_not_overdue_for_a_checkpoint_during_its_start_up() -> None:
    # 28 minutes into a new attempt without a checkpoint of its own: it restarted from its last one once its
    # 5 min start-up was over, so that checkpoint is 23 minutes old, not 28 (overdue is 30)
    run = [running(1, "ann", ["a"], P.LOW, ran=28 * MIN)]
    cfg = PolicyConfig(checkpoint_wait_seconds=25 * MIN)
    result = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=20 * MIN)], config=cfg))
    assert result.suspends == ()
    assert result.explanations[2].code is ReasonCode.CHECKPOINT
    assert result.explanations[2].eta == NOW + 2 * MIN
    later = plan(snap(nodes("a"), run, [waiting(2, "bob", waited=20 * MIN)], now=NOW + 2 * MIN, config=cfg))
    assert later.suspends == (Suspend(1, SuspendReason.PREEMPTED, 2),)


# Run-time estimates: backfill in front of a reservation, and the order of starving jobs --------------------


def _estimated(w: Waiting, seconds: float | None) -> Waiting:
    return dataclasses.replace(w, run_estimate=seconds)


def test_backfill_uses_run_time_estimates_in_front_of_a_reservation() -> None:
    # ann's 6-node job is expected to end in 20 minutes; bob's 4-node job has waited 2 h and needs 2 of its nodes
    run = [dataclasses.replace(running(1, "ann", EIGHT[:6], ran=HOUR), expected_end=NOW + 20 * MIN)]
    wait = [
        waiting(2, "bob", n=4, waited=2 * HOUR),
        _estimated(waiting(3, "cat", submitted_ago=60), 10 * MIN),  # done before bob can start
        _estimated(waiting(4, "dan", submitted_ago=60), 5 * HOUR),  # would delay bob
        waiting(5, "eve", submitted_ago=60),  # no estimate
    ]
    easy = PolicyConfig(estimate_backfill=True)
    result = plan(snap(nodes(*EIGHT), run, wait, config=easy))
    assert started(result) == {3: ("n6",)}
    assert result.reservations[0].attempt_id == 2
    assert result.reservations[0].free_nodes == 2
    assert code(result, 4) is ReasonCode.RESERVED
    assert code(result, 5) is ReasonCode.RESERVED

    # without estimate backfill (the default) the reservation cannot tell when bob starts, so it keeps no idle node
    assert set(started(plan(snap(nodes(*EIGHT), run, wait)))) == {3, 4}


def test_backfill_of_a_suspendable_lower_level_job_when_switched_on() -> None:
    run = [dataclasses.replace(running(1, "ann", EIGHT[:6], ran=HOUR), expected_end=NOW + 20 * MIN)]
    wait = [waiting(2, "bob", n=4, waited=2 * HOUR), waiting(3, "cat", priority=P.LOW, submitted_ago=60)]
    cfg = PolicyConfig(estimate_backfill=True, backfill_suspendable=True, min_run_seconds=10 * MIN)
    assert set(started(plan(snap(nodes(*EIGHT), run, wait, config=cfg)))) == {3}
    # otherwise only jobs expected to be done in time backfill
    assert started(plan(snap(nodes(*EIGHT), run, wait, config=PolicyConfig(estimate_backfill=True)))) == {}


def test_starving_jobs_go_smallest_estimated_footprint_first() -> None:
    cfg = PolicyConfig(reservation_wait_seconds=math.inf)  # the order alone
    wait = [
        _estimated(waiting(1, "ann", waited=9 * HOUR), 10 * HOUR),
        _estimated(waiting(2, "bob", waited=7 * HOUR), HOUR),
        waiting(3, "cat", waited=8 * HOUR),  # no estimate: after those with one
    ]
    result = plan(snap(nodes("a"), wait=wait, config=cfg))
    assert started(result) == {2: ("a",)}
    assert [result.explanations[i].position for i in (1, 3)] == [1, 2]
    # without estimates they go oldest first
    result = plan(snap(nodes("a"), wait=wait, config=dataclasses.replace(cfg, use_estimates=False)))
    assert started(result) == {1: ("a",)}
