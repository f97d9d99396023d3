"""``IdFirstPaginator``: the same pages as Django's ``Paginator``, in two cheap queries at any depth."""

from __future__ import annotations

import pytest
from django.core.paginator import EmptyPage, Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.paging import IdFirstPaginator
from apps.experiments.models import Chain, ChainTag
from tests.factories import EnvironmentFactory, NodeGroupFactory, UserFactory


@pytest.fixture
def chains(db):
    owner, other = UserFactory(username="alice"), UserFactory(username="bob")
    group, env = NodeGroupFactory(), EnvironmentFactory()
    rows = Chain.objects.bulk_create(
        [
            Chain(
                owner=owner if i % 3 else other,
                name=f"job-{i % 7}",  # repeated names: ordering by name has ties
                workspace="/w",
                entrypoint="t.py",
                node_group=group,
                node_count=1,
                environment=env,
                environment_name="default",
                finished=True,
            )
            for i in range(53)
        ]
    )
    ChainTag.objects.bulk_create([ChainTag(chain=c, name="x") for c in rows[::2]])
    return owner, rows


@pytest.mark.parametrize("ordering", [("-id",), ("name", "id"), ("-name", "-id")])
@pytest.mark.parametrize("per_page", [1, 10, 25])
def test_every_page_has_the_rows_of_offset_paging_in_order(chains, ordering, per_page):
    owner, _rows = chains
    qs = Chain.objects.filter(owner=owner).select_related("owner").prefetch_related("tags").order_by(*ordering)
    plain, first = Paginator(qs, per_page), IdFirstPaginator(qs, per_page)
    assert first.count == plain.count == 35
    assert first.num_pages == plain.num_pages
    for number in first.page_range:
        expected = [c.pk for c in plain.page(number)]
        got = first.page(number)
        assert [c.pk for c in got] == expected
        assert got.has_next() == (number < plain.num_pages)


def test_a_page_is_a_count_keys_and_rows_with_related_rows_loaded(chains):
    owner, _rows = chains
    qs = Chain.objects.filter(owner=owner).select_related("owner").prefetch_related("tags").order_by("-id")
    paginator = IdFirstPaginator(qs, 10)
    with CaptureQueriesContext(connection) as ctx:
        page = paginator.page(3)
        names = [(c.owner.username, [t.name for t in c.tags.all()]) for c in page]
    # count, keys, rows, tags: nothing per row
    assert len(ctx.captured_queries) == 4
    assert len(names) == 10
    assert {n for n, _tags in names} == {"alice"}
    assert "OFFSET" in ctx.captured_queries[1]["sql"] and '"experiments_chain"."id"' in ctx.captured_queries[1]["sql"]


def test_filters_are_kept_and_a_page_past_the_end_is_refused(chains):
    owner, _rows = chains
    qs = Chain.objects.filter(owner=owner, tags__name="x").distinct().order_by("name", "id")
    paginator = IdFirstPaginator(qs, 5)
    tagged = Chain.objects.filter(owner=owner, tags__name="x")
    expected = list(tagged.order_by("name", "id").values_list("pk", flat=True))
    assert paginator.count == len(expected)
    got = [c.pk for n in paginator.page_range for c in paginator.page(n)]
    assert got == expected
    with pytest.raises(EmptyPage):
        paginator.page(paginator.num_pages + 1)


def test_an_empty_list_has_one_empty_page(db):
    paginator = IdFirstPaginator(Chain.objects.order_by("-id"), 25)
    assert paginator.count == 0
    assert list(paginator.page(1)) == []
