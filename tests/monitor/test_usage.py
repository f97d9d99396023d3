"""The usage page: GPU-hours per user, team or node group over a period, per day or week, ranked,
with the GPU-hours lost to preemption; the CSV is the page's table cell for cell; a bad period is
refused with a message saying what to change."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group

from apps.experiments.choices import QueueStatus, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Chain, Rank
from tests.factories import NodeFactory, NodeGroupFactory, UserFactory

DAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


def _job(owner, nodes, began, ended, *, group="training", reason="", checkpoint=None):
    """A job whose one attempt held ``nodes`` from ``began`` to ``ended`` (None: still running)."""
    chain = Chain.objects.create(
        owner=owner,
        name=f"j{Chain.objects.count()}",
        workspace="/tmp",
        entrypoint="x.py",
        node_group=NodeGroupFactory(name=group),
        node_count=len(nodes),
        environment_name="default",
        finished=ended is not None,
    )
    attempt = Attempt.objects.create(
        chain=chain,
        index=0,
        priority=10,
        queue_status=QueueStatus.SCHEDULED if ended is None else QueueStatus.FINISHED,
        worker_status=WorkerStatus.RUNNING
        if ended is None
        else (WorkerStatus.SUSPENDED if reason else WorkerStatus.SUCCEEDED),
        suspend_reason=reason,
        scheduled_at=began,
        started_at=began,
        finished_at=ended,
        last_checkpoint_at=checkpoint,
    )
    for i, node in enumerate(nodes):
        Rank.objects.create(attempt=attempt, rank=i, node=node, holds_node=ended is None)
    return chain


@pytest.fixture
def usage(admins):
    team = Group.objects.create(name="vision")
    ann = UserFactory(username="u-ann", team=team)
    ben = UserFactory(username="u-ben", team=team)
    cat = UserFactory(username="u-cat")
    n8 = [NodeFactory(name=f"g{i}", gpu_count=8) for i in range(3)]
    n2 = NodeFactory(name="small", gpu_count=2, group=NodeGroupFactory(name="dev"))
    # ann: 2 nodes × 8 GPUs for 3 h on day 1 = 48; 8 GPUs from 22:00 day 2 to 02:00 day 3 = 16 + 16
    _job(ann, n8[:2], DAY + timedelta(hours=1), DAY + timedelta(hours=4))
    _job(ann, n8[2:], DAY + timedelta(days=1, hours=22), DAY + timedelta(days=2, hours=2))
    # ben: preempted after 2 h, last checkpoint 30 min before: 16 GPU-h used, 4 lost, on day 2
    _job(
        ben,
        n8[:1],
        DAY + timedelta(days=1, hours=1),
        DAY + timedelta(days=1, hours=3),
        reason=SuspendReason.PREEMPTED,
        checkpoint=DAY + timedelta(days=1, hours=2, minutes=30),
    )
    # cat: 2 GPUs in "dev", started before the period, 2 h inside it on day 1 = 4
    _job(cat, [n2], DAY - timedelta(hours=5), DAY + timedelta(hours=2), group="dev")
    # outside the period: not counted
    _job(cat, [n2], DAY + timedelta(days=9), DAY + timedelta(days=9, hours=1), group="dev")
    return admins


def _table(body: str) -> list[list[str]]:
    rows = re.findall(r"<tr data-usage-row=[^>]*>(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows
    ]


PERIOD = "start=2026-11-02&end=2026-11-04"


def test_usage_per_user_per_day_ranked_and_the_csv_matches_the_page(usage, django_assert_num_queries):
    # session, user, groups, unread; attempts that ran, attempts suspended, nodes' GPUs, their ranks
    with django_assert_num_queries(8):
        response = usage["cluster_manager"].get(f"/monitor/usage/?{PERIOD}&by=user&step=day")
    assert response.status_code == 200
    table = _table(response.content.decode())
    assert table == [
        ["1", "u-ann", "80.0", "0.0", "48.0", "16.0", "16.0"],
        ["2", "u-ben", "16.0", "4.0", "0.0", "16.0", "0.0"],
        ["3", "u-cat", "4.0", "0.0", "4.0", "0.0", "0.0"],
        ["", "Total", "100.0", "4.0", "52.0", "32.0", "16.0"],
    ]
    csv_response = usage["cluster_manager"].get(f"/monitor/usage/?{PERIOD}&by=user&step=day&format=csv")
    assert csv_response["Content-Type"].startswith("text/csv")
    assert 'filename="rota-usage-user-2026-11-02-2026-11-04.csv"' in csv_response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(csv_response.content.decode())))
    assert rows[0] == [
        "rank",
        "user",
        "gpu_hours",
        "gpu_hours_lost_to_preemption",
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
    ]
    assert [r if r[0] else ["", "Total", *r[2:]] for r in rows[1:]] == table


def test_the_ranks_of_many_attempts_are_read_in_chunks_with_the_same_result(
    usage, monkeypatch, django_assert_num_queries
):
    from monitor import selectors

    whole = usage["ops"].get(f"/monitor/usage/?{PERIOD}&by=user&step=day").content.decode()
    monkeypatch.setattr(selectors, "RANK_CHUNK", 1)
    with django_assert_num_queries(7 + 4):  # one query of ranks for each of the period's 4 attempts
        chunked = usage["ops"].get(f"/monitor/usage/?{PERIOD}&by=user&step=day").content.decode()
    assert _table(chunked) == _table(whole)


def test_usage_per_team_and_node_group_per_week(usage):
    body = usage["ops"].get("/monitor/usage/?start=2026-10-28&end=2026-11-10&by=team&step=week").content.decode()
    # weeks: Wed 10-28 (cut), Mon 11-02, Mon 11-09 (cut); cat's job from 11-01 19:00 spans the first two
    assert _table(body) == [
        ["1", "vision", "96.0", "4.0", "0.0", "96.0", "0.0"],
        ["2", "—", "14.0", "0.0", "10.0", "4.0", "0.0"],
        ["", "Total", "110.0", "4.0", "10.0", "100.0", "0.0"],
    ]
    body = usage["ops"].get(f"/monitor/usage/?{PERIOD}&by=group&step=week").content.decode()
    assert _table(body)[:2] == [["1", "training", "96.0", "4.0", "96.0"], ["2", "dev", "4.0", "0.0", "4.0"]]


def test_equal_totals_as_shown_rank_by_name(admins):
    node = NodeFactory(name="t0", gpu_count=3)
    # 3 GPUs for 1 h = 3.0 GPU-h; zed's job is 0.1 s longer: the same figure shown, so the name decides
    _job(UserFactory(username="u-zed"), [node], DAY + timedelta(hours=1), DAY + timedelta(hours=2, seconds=0.1))
    _job(UserFactory(username="u-amy"), [node], DAY + timedelta(hours=3), DAY + timedelta(hours=4))
    table = _table(admins["ops"].get(f"/monitor/usage/?{PERIOD}&by=user&step=day").content.decode())
    assert [row[:3] for row in table[:2]] == [["1", "u-amy", "3.0"], ["2", "u-zed", "3.0"]]


def test_a_running_job_counts_until_now(admins):
    ann = UserFactory(username="u-run")
    began = datetime.now(UTC) - timedelta(hours=2)
    _job(ann, [NodeFactory(name="r0", gpu_count=4)], began, None)
    body = admins["ops"].get("/monitor/usage/").content.decode()  # default: the last 7 days
    (row, _total) = _table(body)
    assert row[:2] == ["1", "u-run"] and 7.9 <= float(row[2]) <= 8.1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=2026-11-05&end=2026-11-01", "The period ends before it starts"),
        ("start=2026-01-01&end=2026-12-01&step=day", "That is 335 days; choose at most 62 days in columns of days."),
        ("start=2024-01-01&end=2026-12-01&step=week", "choose at most 366 days in columns of weeks."),
        ("start=yesterday", "Enter a valid date."),
        ("by=planet", "Select a valid choice."),
    ],
)
def test_bad_periods_are_refused_with_a_clear_message(admins, query, message):
    for suffix in ("", "&format=csv"):
        response = admins["ops"].get(f"/monitor/usage/?{query}{suffix}")
        assert response.status_code == 400
        assert message in response.content.decode()
        assert "data-usage" not in response.content.decode()
