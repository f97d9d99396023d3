"""The pure policy's priority levels (``apps/experiments/feasibility.py``, which imports nothing from
Django) must stay the same as the model choices users and the API see."""

from __future__ import annotations

from apps.core.priorities import Priority as ModelPriority
from apps.scheduler.policy import LEVELS, Priority


def test_policy_priority_equals_the_model_choices() -> None:
    assert [(p.name, p.value) for p in Priority] == [(p.name, p.value) for p in ModelPriority]


def test_policy_levels_are_the_quota_levels_highest_first() -> None:
    from apps.core.priorities import QUOTA_LEVELS

    assert tuple(int(p) for p in QUOTA_LEVELS) == LEVELS


def test_fast_constructors_build_what_the_named_tuples_build() -> None:
    from apps.scheduler.policy import (
        Explanation,
        Holder,
        ReasonCode,
        Start,
        Suspend,
        SuspendReason,
        _build,
        _explain,
        _holder,
    )

    holder = _holder(3, "ann", 2, 10)
    assert type(holder) is Holder
    assert holder == Holder(3, "ann", 2, 10)
    assert hash(holder) == hash(Holder(3, "ann", 2, 10))
    fast = _explain(7, ReasonCode.QUOTA, "msg", 2, (holder,), 10, 5.0)
    assert fast == Explanation(7, ReasonCode.QUOTA, "msg", 2, (Holder(3, "ann", 2, 10),), 10, 5.0)
    assert type(fast) is Explanation
    assert repr(fast) == repr(Explanation(7, ReasonCode.QUOTA, "msg", 2, (Holder(3, "ann", 2, 10),), 10, 5.0))
    assert repr(holder) == "Holder(attempt_id=3, user='ann', nodes=2, priority=10)"  # what the driver fingerprints
    default_eta = _explain(7, ReasonCode.QUOTA, "msg", 2, (), None)
    assert default_eta == Explanation(7, ReasonCode.QUOTA, "msg", 2, (), None)
    assert default_eta.eta is None
    suspend = _build(Suspend, (4, SuspendReason.PREEMPTED, 7))
    assert type(suspend) is Suspend and suspend == Suspend(4, SuspendReason.PREEMPTED, 7)
    assert repr(suspend) == repr(Suspend(attempt_id=4, reason=SuspendReason.PREEMPTED, beneficiary_attempt_id=7))
    start = _build(Start, (7, ("n1", "n2"), 10, None))
    assert type(start) is Start and start == Start(7, ("n1", "n2"), 10)
