"""Every page stays cheap with 1,000 jobs in the database: an exact query count per page (a query
that grows with the data, or a new N+1, changes the count and fails here), and the server time of
each page printed in the output for a person to read (the suite asserts no times)."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.experiments.choices import ChainStatus, QueueStatus, WorkerStatus
from apps.experiments.models import Attempt, Chain, ChainTag
from apps.web.selectors import CLUSTER_OVERVIEW_KEY, QUEUE_SUMMARY_KEY

JOBS = 1000

# Queries per page, on either database profile. Change a number only with a reason in the commit.
# The dashboard's shared queue and node counts come from the cache (``queue_summary``,
# ``cluster_overview``) once warm; a list
# page is a count, the page's keys, then its rows (``apps/core/paging.py``), so page 20 costs
# what page 1 does.
BUDGET = {
    "/": 10,
    "/experiments/": 11,
    "/experiments/?page=20": 11,
    "/experiments/?scope=all&status=finished": 11,
    "/experiments/?scope=all&page=30": 11,
    "/experiments/{chain}/": 9,
    "/experiments/{chain}/logs/": 9,
    "/submit/": 10,
    "/submit/?from={chain}": 13,
    "/account/": 8,
    "/account/tokens/": 5,  # + the user's groups: the nav shows the admin pages to admins (monitor)
    "/account/settings/": 5,
}

# The API a researcher's tools use, with a bearer token (bench/pages.py times the same ones).
API_BUDGET = {
    "/api/v1/experiments/": 6,
    "/api/v1/experiments/?page=20": 6,
    "/api/v1/experiments/{chain}/": 7,
    "/api/schema/": 1,
    "/api/v1/me/": 2,
    "/api/v1/nodes/": 7,
}


def thousand_jobs(cluster, user, other_user) -> Chain:
    """1,000 finished jobs (half the user's, half another's, two attempts each in every tenth),
    with tags; the newest of the user's is returned."""
    env = cluster.group.chains.model._meta.get_field("environment").related_model.objects.get(name="default")
    now = timezone.now()
    chains = Chain.objects.bulk_create(
        [
            Chain(
                owner=user if i % 2 else other_user,
                name=f"bulk-{i:04d}",
                workspace="/tmp",
                entrypoint="train.py",
                node_group=cluster.group,
                node_count=1 + i % 3,
                priority=10,
                environment=env,
                environment_name="default",
                status=ChainStatus.SUCCEEDED if i % 5 else ChainStatus.STOPPED,
                finished=True,
                finished_at=now,
            )
            for i in range(JOBS)
        ]
    )
    attempts = Attempt.objects.bulk_create(
        [
            Attempt(
                chain=chain,
                index=index,
                priority=10,
                worker_status=WorkerStatus.SUCCEEDED,
                queue_status=QueueStatus.FINISHED,
                started_at=now,
                finished_at=now,
            )
            for i, chain in enumerate(chains)
            for index in range(2 if i % 10 == 0 else 1)
        ]
    )
    latest = {a.chain_id: a for a in attempts}
    for chain in chains:
        chain.latest_attempt = latest[chain.pk]
    Chain.objects.bulk_update(chains, ["latest_attempt"])
    ChainTag.objects.bulk_create([ChainTag(chain=c, name=f"t{i % 7}") for i, c in enumerate(chains)])
    return chains[-1] if chains[-1].owner_id == user.pk else chains[-2]


def test_every_page_keeps_its_query_count_with_a_thousand_jobs(
    cluster, submit, user, other_user, page, api, settings, capsys
):
    settings.ROTA_QUEUE_SUMMARY_SECONDS = 60  # as in production: the shared counts are cached
    cache.delete(QUEUE_SUMMARY_KEY)
    cache.delete(CLUSTER_OVERVIEW_KEY)
    newest = thousand_jobs(cluster, user, other_user)
    for i in range(3):
        submit(user, name=f"live-{i}", nodes=2)  # running and waiting jobs too
    counts, lines = {}, []
    for url in BUDGET:
        target = url.format(chain=newest.pk)
        page.get(target)  # warm: caches, the session, translations
        start = time.perf_counter()
        with CaptureQueriesContext(connection) as ctx:
            response = page.get(target)
        elapsed_ms = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, target
        counts[url] = len(ctx.captured_queries)
        lines.append(f"[page time] {target}: {elapsed_ms:.0f} ms, {counts[url]} queries")
    api_counts = {}
    for url in API_BUDGET:
        target = url.format(chain=newest.pk)
        api.get(target)
        start = time.perf_counter()
        with CaptureQueriesContext(connection) as ctx:
            response = api.get(target)
        elapsed_ms = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, target
        api_counts[url] = len(ctx.captured_queries)
        lines.append(f"[page time] {target}: {elapsed_ms:.0f} ms, {api_counts[url]} queries")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert counts == BUDGET
    assert api_counts == API_BUDGET


# A user in a team, whose team-mate shares half of their jobs: the pages and endpoints that apply
# the visibility rule (``chains_visible_to``) read the team-mates' keys first, one query more than
# for a user without a team (the bench's users all have teams); the own-jobs pages do not.
TEAM_BUDGET = {
    "/": BUDGET["/"],
    "/experiments/": BUDGET["/experiments/"],
    "/experiments/?scope=all&page=30": BUDGET["/experiments/?scope=all&page=30"] + 1,
    "/experiments/{chain}/": BUDGET["/experiments/{chain}/"] + 1,
    "/api/v1/experiments/": API_BUDGET["/api/v1/experiments/"] + 1,
    "/api/v1/experiments/?page=20": API_BUDGET["/api/v1/experiments/?page=20"] + 1,
    "/api/v1/experiments/{chain}/": API_BUDGET["/api/v1/experiments/{chain}/"] + 1,
}


def test_a_team_member_pays_one_query_for_the_team_whatever_the_page(
    cluster, submit, user, other_user, page, api, settings
):
    from apps.accounts.models import User
    from tests.factories import GroupFactory

    settings.ROTA_QUEUE_SUMMARY_SECONDS = 60
    cache.delete(QUEUE_SUMMARY_KEY)
    cache.delete(CLUSTER_OVERVIEW_KEY)
    team = GroupFactory(name="vision")
    User.objects.filter(pk__in=[user.pk, other_user.pk]).update(team=team)
    newest = thousand_jobs(cluster, user, other_user)
    Chain.objects.filter(owner=other_user, id__gt=newest.pk - 400).update(shared_with_team=True)
    for i in range(3):
        submit(user, name=f"live-{i}", nodes=2)
    counts = {}
    for url in TEAM_BUDGET:
        target = url.format(chain=newest.pk)
        client = api if url.startswith("/api/") else page
        client.get(target)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(target)
        assert response.status_code == 200, target
        counts[url] = len(ctx.captured_queries)
    assert counts == TEAM_BUDGET
    # the team's shared jobs are really in the lists: the budget is not that of an empty page
    listed = api.get("/api/v1/experiments/?owner=bob").json()
    assert listed["count"] == Chain.objects.filter(owner=other_user, shared_with_team=True).count() > 0
