"""The failure message a job page shows for a rank that failed: the code once, then what the
backend added."""

from __future__ import annotations

import pytest

from apps.launcher.backends.base import RankObservation, RankPhase
from apps.launcher.reconcile import _failure_message


@pytest.mark.parametrize(
    ("code", "message", "shown"),
    [
        (1, "exited with code 1", "rank 2 exited with code 1"),  # the local supervisor's own words
        (1, "exited with code 1 after suspend request", "rank 2 exited with code 1 after suspend request"),
        (137, "OOMKilled", "rank 2 exited with code 137: OOMKilled"),
        (1, "exited with code 12", "rank 2 exited with code 1: exited with code 12"),  # another code is news
        (3, "", "rank 2 exited with code 3"),
    ],
)
def test_the_code_is_said_once(code, message, shown):
    obs = RankObservation(rank=2, phase=RankPhase.FAILED, exit_code=code, message=message)
    assert _failure_message(obs) == shown
