"""What the portal does to stay fast at cluster scale must not show anyone another's jobs: the
own-jobs list, the team sub-select, the owner filter, the shared (cached) queue counts and the
cached API schema."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.cluster.choices import NodeState
from apps.experiments.choices import ChainStatus, QueueStatus
from apps.experiments.models import Attempt, Chain
from apps.experiments.selectors import chains_visible_to
from apps.web.selectors import CLUSTER_OVERVIEW_KEY, QUEUE_SUMMARY_KEY, cluster_overview, dashboard
from tests.factories import EnvironmentFactory, GroupFactory, NodeFactory, NodeGroupFactory, UserFactory


def make_chain(owner, name, *, shared=False, status=ChainStatus.WAITING, queue=QueueStatus.QUEUED, nodes=1):
    chain = Chain.objects.create(
        owner=owner,
        name=name,
        workspace="/w",
        entrypoint="t.py",
        node_group=NodeGroupFactory(),
        node_count=nodes,
        priority=20,
        environment=EnvironmentFactory(),
        environment_name="default",
        shared_with_team=shared,
        status=status,
        finished=status == ChainStatus.SUCCEEDED,
    )
    attempt = Attempt.objects.create(chain=chain, index=0, priority=20, queue_status=queue)
    Chain.objects.filter(pk=chain.pk).update(latest_attempt=attempt)
    return chain


@pytest.fixture
def people(db):
    team, other_team = GroupFactory(name="vision"), GroupFactory(name="speech")
    alice = UserFactory(username="alice", team=team)
    carol = UserFactory(username="carol", team=team)
    dave = UserFactory(username="dave", team=other_team)
    loner = UserFactory(username="loner")
    jobs = {
        "alice-own": make_chain(alice, "alice-own"),
        "carol-shared": make_chain(carol, "carol-shared", shared=True),
        "carol-private": make_chain(carol, "carol-private"),
        "dave-shared": make_chain(dave, "dave-shared", shared=True),
        "loner-shared": make_chain(loner, "loner-shared", shared=True),
    }
    return alice, carol, dave, loner, jobs


def names(qs):
    return sorted(qs.values_list("name", flat=True))


def test_visibility_is_own_plus_the_teams_shared_jobs(people):
    alice, carol, dave, loner, _jobs = people
    assert names(chains_visible_to(user=alice)) == ["alice-own", "carol-shared"]
    assert names(chains_visible_to(user=carol)) == ["carol-private", "carol-shared"]
    assert names(chains_visible_to(user=dave)) == ["dave-shared"]
    assert names(chains_visible_to(user=loner)) == ["loner-shared"]  # no team: nobody else's shared jobs


def test_the_list_shows_only_ones_own_jobs_by_default_and_the_teams_with_scope_all(people, browser_for):
    alice, *_rest = people
    client = browser_for(alice)
    mine = client.get("/experiments/").context["chains"]
    assert [c.name for c in mine] == ["alice-own"]
    # an owner parameter cannot widen "mine" to someone else's jobs
    assert [c.name for c in client.get("/experiments/?owner=carol").context["chains"]] == ["alice-own"]
    everything = client.get("/experiments/?scope=all").context["chains"]
    assert sorted(c.name for c in everything) == ["alice-own", "carol-shared"]
    assert [c.name for c in client.get("/experiments/?scope=all&owner=carol").context["chains"]] == ["carol-shared"]
    assert [c.name for c in client.get("/experiments/?scope=all&owner=dave").context["chains"]] == []


def test_the_api_owner_filter_never_reaches_beyond_what_one_may_see(people, make_client):
    alice, *_rest = people
    api = make_client(alice)
    got = api.get("/api/v1/experiments/?owner=carol").json()
    assert [row["name"] for row in got["results"]] == ["carol-shared"]
    assert got["count"] == 1
    assert api.get("/api/v1/experiments/?owner=dave").json()["count"] == 0
    assert api.get("/api/v1/experiments/?owner=nobody").json()["count"] == 0


def test_queue_counts_are_shared_and_cached_but_ones_own_jobs_are_not(people, settings):
    alice, carol, *_rest = people
    settings.ROTA_QUEUE_SUMMARY_SECONDS = 60
    cache.delete(QUEUE_SUMMARY_KEY)
    first = dashboard(user=alice)
    lane = first.queues[0].lanes[0]
    assert (lane.waiting_jobs, [c.name for c in lane.mine]) == (5, ["alice-own"])
    # the cache holds counts only, nothing about a person or a job
    assert cache.get(QUEUE_SUMMARY_KEY) == [
        {"chain__node_group__name": "training", "queue_status": "queued", "effective_priority": None,
         "priority": 20, "jobs": 5, "nodes": 5}
    ]  # fmt: skip
    make_chain(carol, "carol-new")
    with CaptureQueriesContext(connection) as ctx:
        second = dashboard(user=carol)
    assert not any("SUM(" in q["sql"] for q in ctx.captured_queries)  # the counts came from the cache
    lane = second.queues[0].lanes[0]
    assert lane.waiting_jobs == 5  # a few seconds old, as documented
    assert sorted(c.name for c in lane.mine) == ["carol-new", "carol-private", "carol-shared"]  # current
    cache.delete(QUEUE_SUMMARY_KEY)
    assert dashboard(user=carol).queues[0].lanes[0].waiting_jobs == 6


def test_without_a_cache_period_the_counts_are_computed_every_time(people, settings):
    alice, carol, *_rest = people
    settings.ROTA_QUEUE_SUMMARY_SECONDS = 0
    assert dashboard(user=alice).queues[0].lanes[0].waiting_jobs == 5
    make_chain(carol, "carol-new")
    assert dashboard(user=alice).queues[0].lanes[0].waiting_jobs == 6


def test_node_counts_are_shared_and_cached_for_the_period(db, settings):
    settings.ROTA_QUEUE_SUMMARY_SECONDS = 60
    cache.delete(CLUSTER_OVERVIEW_KEY)
    NodeFactory(name="gpu-1")
    NodeFactory(name="gpu-2", state=NodeState.DISABLED)
    first = cluster_overview()
    assert [(g.name, g.total, g.free, g.disabled, g.training) for g in first] == [("training", 2, 1, 1, True)]
    # the cache holds counts per node group only
    assert cache.get(CLUSTER_OVERVIEW_KEY) == [
        {"name": "training", "total": 2, "busy": 0, "free": 1, "not_ready": 0, "disabled": 1, "training": True}
    ]
    NodeFactory(name="gpu-3")
    with CaptureQueriesContext(connection) as ctx:
        assert cluster_overview() == first  # a few seconds old, as documented
    assert len(ctx.captured_queries) == 0
    cache.delete(CLUSTER_OVERVIEW_KEY)
    assert [(g.total, g.free) for g in cluster_overview()] == [(3, 2)]
    cache.delete(CLUSTER_OVERVIEW_KEY)


def test_without_a_cache_period_the_node_counts_are_read_every_time(db, settings):
    settings.ROTA_QUEUE_SUMMARY_SECONDS = 0
    cache.delete(CLUSTER_OVERVIEW_KEY)
    NodeFactory(name="gpu-1")
    assert cluster_overview()[0].total == 1
    NodeFactory(name="gpu-2")
    assert cluster_overview()[0].total == 2
    assert cache.get(CLUSTER_OVERVIEW_KEY) is None


def test_the_schema_is_built_once_per_language_and_format_and_is_the_same_for_everyone(db, make_client, settings):
    from apps.core.api import schema

    schema._RENDERED_SCHEMAS.clear()
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first = make_client(alice).get("/api/schema/?format=json")
    assert first.status_code == 200 and first["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert b'"/api/v1/experiments/"' in first.content and b"/api/schema/" not in first.content
    client = make_client(bob)
    built = mock.patch.object(
        schema.CachedSchemaView.generator_class, "get_schema", side_effect=AssertionError("schema rebuilt")
    )
    with CaptureQueriesContext(connection) as ctx, built:
        second = client.get("/api/schema/?format=json")
    assert second.content == first.content
    assert second["Content-Disposition"] == first["Content-Disposition"]
    # the bearer token's look-up and its first use; nothing else
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["SELECT", "UPDATE"]
    yaml = make_client(bob).get("/api/schema/")
    assert yaml["Content-Type"].startswith("application/vnd.oai.openapi") and yaml.content != first.content
    zh = make_client(bob).get("/api/schema/?format=json&lang=zh-hans")
    assert zh.status_code == 200
    assert set(schema._RENDERED_SCHEMAS) == {("en", "json"), ("en", "yaml"), ("zh-hans", "json")}
    # unknown languages are served but not kept (no unbounded cache)
    assert make_client(bob).get("/api/schema/?format=json&lang=xx-evil").status_code == 200
    assert len(schema._RENDERED_SCHEMAS) == 3


@pytest.mark.django_db
def test_tag_suggestions_are_the_users_own_from_their_newest_jobs_most_used_first(monkeypatch):
    from apps.experiments.models import ChainTag
    from apps.web import selectors

    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    old = make_chain(alice, "old")
    ChainTag.objects.create(chain=old, name="ancient")
    newer = [make_chain(alice, f"new-{i}") for i in range(3)]
    for chain in newer:
        ChainTag.objects.create(chain=chain, name="sweep")
    ChainTag.objects.create(chain=newer[0], name="baseline")
    theirs = make_chain(bob, "theirs")
    ChainTag.objects.create(chain=theirs, name="bobs-secret")
    assert selectors.tags_of(user=alice) == ["sweep", "ancient", "baseline"]
    assert selectors.tags_of(user=alice, limit=1) == ["sweep"]
    monkeypatch.setattr(selectors, "TAGS_FROM_RECENT_JOBS", 3)  # the oldest job is no longer read
    with CaptureQueriesContext(connection) as queries:
        assert selectors.tags_of(user=alice) == ["sweep", "baseline"]
    assert len(queries) == 1
    assert selectors.tags_of(user=bob) == ["bobs-secret"]
    assert selectors.tags_of(user=UserFactory(username="carol")) == []
