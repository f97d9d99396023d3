"""Page-number pagination that stays as fast on page 2,000 as on page 1.

Django's ``Paginator`` slices the list's query with ``OFFSET``: on a deep page PostgreSQL builds
(joins, sorts) every row before the page and throws them away, and the list's rows are wide (the
latest attempt, the owner and the node group are joined in). ``IdFirstPaginator`` pages over the
primary keys alone — the same filters and ordering, but narrow rows the planner can often read
from an index — and then fetches the page's rows by key, with the query's ``select_related`` and
``prefetch_related``, in the order of the keys. Two queries instead of one, each cheap at any depth
(docs/PERFORMANCE.md, "Portal pages and API at cluster scale").
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property


class IdFirstPaginator(Paginator):
    """A ``Paginator`` over a ``QuerySet`` that reads a page's keys first, then its rows."""

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return Page(queryset[bottom:top], number, self)
        keys = list(queryset.prefetch_related(None).values_list("pk", flat=True)[bottom:top])
        rows: dict[Any, Any] = {}
        if keys:
            # The same query restricted to the keys (filters kept: a row that stopped matching
            # between the two queries is left out rather than shown), read by primary key.
            rows = {row.pk: row for row in queryset.filter(pk__in=keys).order_by()}
        return Page([rows[k] for k in keys if k in rows], number, self)

    @cached_property
    def count(self) -> int:
        """The number of rows, counted over keys only (no joins for the select list)."""
        queryset = self.object_list
        if isinstance(queryset, QuerySet):
            return queryset.prefetch_related(None).select_related(None).order_by().values("pk").count()
        return len(queryset)
