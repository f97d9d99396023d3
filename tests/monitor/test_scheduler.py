"""The scheduler overview: per group and level what runs and waits, the queue in the scheduler's
order with its reasons, the last pass (time, duration, reservations) and recent preemptions."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache

from apps.experiments import lifecycle
from apps.experiments.choices import RankStatus
from apps.experiments.models import Attempt, Chain
from apps.scheduler.status import SUMMARY_KEY, last_pass_summary
from tests.factories import UserFactory


@pytest.fixture
def fast_policy(settings):
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "MIN_RUN_SECONDS": 0.0}


def _run(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    attempt = Attempt.objects.get(pk=chain.latest_attempt_id)
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    lifecycle.attempt_mark_running(attempt_id=attempt.pk)
    return attempt


def _cells(body: str, marker: str) -> list[str]:
    row = re.search(rf"<tr {marker}>(.*?)</tr>", body, re.S)
    assert row, marker
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_overview_shows_loads_queue_reasons_last_pass_and_preemptions(cluster, submit, admins, fast_policy):
    cache.delete(SUMMARY_KEY)
    ann, ben = UserFactory(username="s-ann"), UserFactory(username="s-ben")
    low = submit(ann, name="low", nodes=3, priority="LOW")
    low_attempt = _run(low)
    normal = submit(ann, name="norm", nodes=1, priority="NORMAL")
    waiting = submit(ben, name="wait", nodes=4, priority="NORMAL")  # behind: needs every node
    high = submit(ben, name="high", nodes=2, priority="HIGH")  # suspends "low"
    lifecycle.attempt_mark_suspended(attempt_id=low_attempt.pk)  # the launcher reports it gone
    summary = last_pass_summary()
    assert summary is not None and summary.seconds > 0 and summary.started >= 0

    body = admins["quota_editor"].get("/monitor/scheduler/").content.decode()
    # Running: "norm" (1 node, NORMAL) and "high" (2 nodes, HIGH); waiting: "wait" and requeued "low".
    assert _cells(body, 'data-level="training:HIGH"') == ["", "HIGH", "1", "2", "0", "0"]
    assert _cells(body, 'data-level="training:NORMAL"') == ["", "NORMAL", "1", "1", "1", "4"]
    assert _cells(body, 'data-level="training:LOW"') == ["", "LOW", "0", "0", "1", "3"]
    assert "4 nodes: 3 used, 1 free, 0 unavailable" in body
    # The queue, in the scheduler's order, with the reason it gave.
    queued = re.findall(r'data-queued="(\d+)"', body)
    assert [int(pk) for pk in queued] == list(
        Attempt.objects.filter(chain__in=[waiting, low], queue_status="queued")
        .order_by("queue_position")
        .values_list("chain_id", flat=True)
    )
    wait_attempt = Attempt.objects.get(pk=Chain.objects.get(pk=waiting.pk).latest_attempt_id)
    assert wait_attempt.pending_code and f'data-reason="{wait_attempt.pending_code}"' in body
    # The preemption: "low" suspended for "high", GPU-hours lost computed from its run.
    row = _cells(body, f'data-preempted="{low.pk}"')
    assert f"#{low.pk}.1 low" in row[1] and f"#{high.pk}.1 high" in row[2]
    assert row[3] == "Preempted by a higher-priority job"
    assert re.fullmatch(r"\d+\.\d", row[4])
    # The last pass.
    assert "data-pass-ms" in body and "asked to suspend" in body
    assert normal.pk  # started, so not in the queue
    assert f'data-queued="{normal.pk}"' not in body


def test_queue_filter_by_group_and_constant_queries(cluster, submit, admins, django_assert_num_queries, task_log):
    ann = UserFactory(username="q-ann")
    with task_log.paused():
        for i in range(3):
            submit(ann, name=f"a{i}", nodes=4, priority="LOW")
    with django_assert_num_queries(12):
        body = admins["ops"].get("/monitor/scheduler/").content.decode()
    assert body.count("data-queued=") == 3
    with task_log.paused():
        for i in range(5):
            submit(ann, name=f"b{i}", nodes=4, priority="LOW")
    with django_assert_num_queries(12):
        body = admins["ops"].get("/monitor/scheduler/?group=training").content.decode()
    assert body.count("data-queued=") == 8
    assert admins["ops"].get("/monitor/scheduler/?group=nope").content.decode().count("data-queued=") == 8


def test_a_later_queue_page_continues_the_schedulers_order(cluster, submit, admins, monkeypatch):
    from monitor import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    ann = UserFactory(username="q-pages")
    chains = [submit(ann, name=f"w{i}", nodes=4, priority="LOW") for i in range(5)]  # one runs, four wait
    waiting = list(
        Attempt.objects.filter(chain__in=chains, queue_status="queued")
        .order_by("queue_position", "pk")
        .values_list("chain_id", flat=True)
    )
    assert len(waiting) == 4
    pages = [admins["ops"].get(f"/monitor/scheduler/?page={n}").content.decode() for n in (1, 2)]
    listed = [[int(pk) for pk in re.findall(r'data-queued="(\d+)"', body)] for body in pages]
    assert listed == [waiting[:2], waiting[2:]]


def test_no_pass_recorded_says_so_and_live_refresh_renders_the_region(cluster, admins):
    cache.delete(SUMMARY_KEY)
    body = admins["cluster_manager"].get("/monitor/scheduler/").content.decode()
    assert "No scheduling pass has been recorded yet" in body
    partial = admins["cluster_manager"].get("/monitor/scheduler/", headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="scheduler-live"') and "<html" not in partial


def test_chinese(cluster, browser_for, admins):
    body = browser_for(admins["users"]["root"], "zh-hans").get("/monitor/scheduler/").content.decode()
    assert "等待队列" in body


def test_every_admin_group_hears_the_admin_pages_events_and_nobody_else(admins):
    from apps.experiments.consumers import _user_groups
    from portal.realtime import ADMINS_GROUP

    people = admins["users"]
    for name in ("root", "cluster_manager", "ops", "quota_editor"):
        assert ADMINS_GROUP in _user_groups(people[name]), name
    assert ADMINS_GROUP not in _user_groups(people["nobody"])


def test_the_nodes_page_refreshes_its_tree_only(cluster, admins):
    body = admins["cluster_manager"].get("/monitor/nodes/", headers={"HX-Request": "true"}).content.decode()
    assert body.lstrip().startswith('<div id="nodes-live"') and "<html" not in body
    assert body.count("<tr data-node=") == 4
    # The page's live region (the wrapper the tree is swapped into) refreshes on node and pass events.
    page = admins["cluster_manager"].get("/monitor/nodes/").content.decode()
    assert 'hx-target="#nodes-live"' in page
    assert 'hx-trigger="rota:node.state from:body delay:250ms, rota:scheduler.pass from:body delay:250ms' in page


def test_history_gives_each_groups_columns_with_gaps_where_no_pass_sampled(
    admins, django_assert_num_queries, monkeypatch
):
    from datetime import UTC, datetime

    from django.utils import timezone

    from apps.scheduler.history import minute_of
    from apps.scheduler.models import LoadSample
    from tests.factories import NodeGroupFactory

    now = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    m = minute_of(now)  # 12:00
    a, b = NodeGroupFactory(name="a100"), NodeGroupFactory(name="cpu")
    row = {"nodes": 4, "gpus": 32, "free": 1}
    LoadSample.objects.bulk_create(
        [
            LoadSample(
                minute=m, group=a, used=3, gpus_used=24, running=2, waiting=3, levels={"30": [1, 2], "0": [1, 1]}, **row
            ),
            LoadSample(minute=m - 2, group=a, used=1, gpus_used=8, running=1, waiting=0, levels={"30": [1, 0]}, **row),
            LoadSample(minute=m - 1, group=b, nodes=1, free=1, levels={}),
            LoadSample(minute=m - 24 * 60, group=a, **row),  # a day ago: just outside the 24 hours
            LoadSample(minute=m - 10, group=a, used=2, running=2, waiting=5, levels={"10": [2, 5]}, **row),
            LoadSample(minute=m - 13, group=a, used=4, **row),  # not a tenth minute: not in the 7 days
        ]
    )
    client = admins["quota_editor"]
    with django_assert_num_queries(4):  # session, user, groups (the admin check), the samples
        day = client.get("/monitor/scheduler/history/").json()
    t = [(m - 1439 + i) * 60 for i in range(1440)]
    assert day["range"] == "24h" and day["step"] == 60 and day["t"] == t
    assert [g["name"] for g in day["groups"]] == ["a100", "cpu"]
    a100 = day["groups"][0]
    gap = [None] * 1426  # 12:00 − 1439 min … 12:00 − 14 min: nothing sampled
    assert a100["used"] == [*gap, 4, None, None, 2, *[None] * 7, 1, None, 3]
    assert a100["gpus_used"][-3:] == [8, None, 24] and a100["nodes"][-1] == 4 and a100["free"][-1] == 1
    assert a100["running"][-3:] == [1, None, 2] and a100["waiting"][-3:] == [0, None, 3]
    assert list(a100["waiting_by_level"]) == ["HIGH", "NORMAL", "LOW"]  # levels where jobs waited, highest first
    assert a100["waiting_by_level"]["LOW"] == [*gap, 0, None, None, 0, *[None] * 7, 0, None, 1]
    assert a100["waiting_by_level"]["NORMAL"][-11:] == [5, *[None] * 7, 0, None, 0]
    assert a100["waiting_by_level"]["HIGH"][-3:] == [0, None, 2]
    cpu = day["groups"][1]
    assert cpu["nodes"] == [*[None] * 1438, 1, None] and cpu["waiting_by_level"] == {}

    week = client.get("/monitor/scheduler/history/?range=7d").json()
    assert week["step"] == 600 and len(week["t"]) == 1008 and week["t"][-1] == m * 60
    assert [g["name"] for g in week["groups"]] == ["a100"]
    assert week["groups"][0]["used"][-145:] == [0, *[None] * 142, 2, 3]  # a day ago, 12:10 ago … now

    bad = client.get("/monitor/scheduler/history/?range=1y")
    assert bad.status_code == 400 and bad.json() == {"error": "Unknown range: use 24h or 7d."}


def test_the_overview_carries_the_charts_card_outside_its_live_region(cluster, admins, browser_for):
    body = admins["ops"].get("/monitor/scheduler/").content.decode()
    assert 'data-history-url="/monitor/scheduler/history/"' in body
    assert body.index('id="load-history"') > body.index('id="scheduler-live"')
    assert "js/monitor-history.js" in body and "vendor/uplot/uPlot.iife.min.js" in body
    assert "<script>" not in body  # CSP: no inline script
    partial = admins["ops"].get("/monitor/scheduler/", headers={"HX-Request": "true"}).content.decode()
    assert "load-history" not in partial  # a live refresh does not redraw the charts
    zh = browser_for(admins["users"]["root"], "zh-hans").get("/monitor/scheduler/").content.decode()
    assert "资源分配与队列随时间的变化" in zh and 'data-label-waiting-at="在 {level} 等待"' in zh
