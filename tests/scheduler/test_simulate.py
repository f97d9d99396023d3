"""The trace-driven simulator (bench/simulate.py) on tiny traces whose outcome can be worked out by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from apps.scheduler.policy import Priority
from bench.simulate import (
    GROUP,
    FifoPolicy,
    JobSpec,
    RotaPolicy,
    Trace,
    read_trace,
    simulate,
    synthetic_trace,
    write_trace,
)

MIN = 60.0
HOUR = 3600.0
P = Priority


def tiny(*jobs: JobSpec, nodes: int = 2, duration: float = 4 * HOUR) -> Trace:
    users = sorted({j.user for j in jobs})
    quotas = {u: {(GROUP, int(lvl)): nodes for lvl in (P.HIGH, P.NORMAL, P.LOW)} for u in users}
    return Trace(tuple(jobs), quotas, duration, nodes=nodes, gpus_per_node=8, rooms=1, name="tiny")


def preemption_trace() -> Trace:
    """A 2-node LOW job checkpointing every 20 min; a 2-node HIGH job arrives after 30 min."""
    return tiny(
        JobSpec(1, "ann", 0.0, 2, HOUR, int(P.LOW), checkpoint=20 * MIN),
        JobSpec(2, "bob", 30 * MIN, 2, HOUR, int(P.HIGH), checkpoint=20 * MIN),
    )


def test_preempted_job_loses_work_since_its_checkpoint_grace_and_restart() -> None:
    m = simulate(preemption_trace(), RotaPolicy())

    # ann starts at 0 and works from 5 min (start-up); at 30 min it has 25 min done, 20 saved. It is
    # asked to suspend at 30 min and frees the nodes after the 60 s grace: 6 min of work lost. bob
    # starts at 31 min and ends at 96 min; ann restarts then and pays 5 more minutes of start-up.
    assert (m.suspensions, m.time_share_suspensions, m.completed, m.never_started) == (1, 0, 2, 0)
    gpu_h = 2 * 8 / 60  # GPU-hours per minute on both nodes
    assert m.lost_gpu_h == pytest.approx((6 + 5) * gpu_h)
    assert m.useful_gpu_h == pytest.approx(120 * gpu_h)  # both jobs' hour of work, nothing more
    assert m.startup_gpu_h == pytest.approx(10 * gpu_h)  # the first start-up of each job
    assert m.held_gpu_h == pytest.approx(m.useful_gpu_h + m.lost_gpu_h + m.startup_gpu_h)
    assert m.waits == {"LOW": [0.0], "HIGH": [MIN]}
    assert m.quota_violations == 0


def test_fifo_without_preemption_never_suspends() -> None:
    m = simulate(preemption_trace(), FifoPolicy("fifo", preempt=False))

    # ann runs its 65 min to the end; bob waits until then
    assert (m.suspensions, m.lost_gpu_h, m.completed) == (0, 0.0, 2)
    assert m.waits == {"LOW": [0.0], "HIGH": [35 * MIN]}


def test_hai_fifo_suspends_everything_outside_the_runnable_prefix() -> None:
    m = simulate(preemption_trace(), FifoPolicy("hai", preempt=True))

    assert (m.suspensions, m.completed) == (1, 2)
    assert m.waits["HIGH"] == [MIN]  # started once ann's grace was over


def test_same_trace_same_numbers() -> None:
    trace = synthetic_trace(7, nodes=32, users=4, days=0.5)
    first = simulate(trace, RotaPolicy(), drain=6 * HOUR)
    again = simulate(trace, RotaPolicy(), drain=6 * HOUR)

    assert first.submitted > 10
    assert dataclasses.replace(first, wall_seconds=0.0) == dataclasses.replace(again, wall_seconds=0.0)
    assert first.held_gpu_h == pytest.approx(first.useful_gpu_h + first.lost_gpu_h + first.startup_gpu_h)
    assert first.quota_violations == 0


def test_csv_trace_round_trips(tmp_path: Path) -> None:
    trace = synthetic_trace(3, nodes=16, users=4, days=0.1)
    path = tmp_path / "t.csv"
    write_trace(trace, path)

    back = read_trace(path, nodes=16)
    assert back.jobs == trace.jobs


def test_csv_trace_with_a_bad_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "job_id,user,submit_s,nodes,work_s,priority,checkpoint_s\n1,ann,0,2,60,NORMAL,\n2,bob,5,0,60,HIGH,\n"
    )

    with pytest.raises(SystemExit, match=r"t\.csv:3: nodes >= 1"):
        read_trace(path)


def test_estimate_modes_change_only_the_declared_run_times() -> None:
    user, exact, none = (
        synthetic_trace(2, nodes=16, users=4, days=0.5, estimates=m) for m in ("user", "exact", "none")
    )
    strip = [dataclasses.replace(j, estimate=None) for j in user.jobs]
    assert strip == list(none.jobs) == [dataclasses.replace(j, estimate=None) for j in exact.jobs]
    assert all(j.estimate == round(j.work + 300.0, 1) for j in exact.jobs)
    declared = [j for j in user.jobs if j.estimate is not None]
    assert 0 < len(declared) < len(user.jobs)
    assert any(j.estimate < j.work for j in declared) and any(j.estimate > 2 * j.work for j in declared)
