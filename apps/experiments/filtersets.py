"""The one FilterSet of the experiments list: API, portal and /monitor share it."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet, Subquery

from apps.accounts.models import User
from apps.core.priorities import Priority, parse_priority
from apps.experiments.choices import ChainStatus
from apps.experiments.models import Chain

# Status groups users think in (HAI Studio's tabs), on top of the exact statuses.
STATUS_GROUPS = {
    "pending": [ChainStatus.WAITING, ChainStatus.SUSPENDED, ChainStatus.HELD],
    "active": [ChainStatus.STARTING, ChainStatus.RUNNING, ChainStatus.SUSPENDING, ChainStatus.STOPPING],
    "finished": [ChainStatus.SUCCEEDED, ChainStatus.FAILED, ChainStatus.STOPPED, ChainStatus.CANCELED],
}
STATUS_CHOICES = [(v, v) for v in ChainStatus.values] + [(k, k) for k in STATUS_GROUPS]


class ChainFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=STATUS_CHOICES, method="filter_status")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    tag = django_filters.CharFilter(method="filter_tags")
    starred = django_filters.BooleanFilter()
    group = django_filters.CharFilter(field_name="node_group__name")
    priority = django_filters.CharFilter(method="filter_priority")
    owner = django_filters.CharFilter(method="filter_owner")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    ordering = django_filters.OrderingFilter(
        fields=(
            ("id", "id"),
            ("created_at", "created_at"),
            ("name", "name"),
            ("priority", "priority"),
            ("status", "status"),
            ("node_count", "nodes"),
        ),
    )

    class Meta:
        model = Chain
        fields = ["status", "name", "tag", "starred", "group", "priority", "owner", "created_after", "created_before"]

    def filter_status(self, queryset: QuerySet[Chain], name: str, values: list[str]) -> QuerySet[Chain]:
        wanted: set[str] = set()
        for value in values:
            wanted.update(STATUS_GROUPS.get(value, [value]))
        return queryset.filter(status__in=sorted(wanted)) if wanted else queryset

    def filter_tags(self, queryset: QuerySet[Chain], name: str, value: str) -> QuerySet[Chain]:
        """``tag=a,b``: chains carrying every listed tag."""
        for tag in [t.strip() for t in value.split(",") if t.strip()]:
            queryset = queryset.filter(Q(tags__name=tag))
        return queryset.distinct() if "," in value else queryset

    def filter_owner(self, queryset: QuerySet[Chain], name: str, value: str) -> QuerySet[Chain]:
        """``owner=<user name>``, matched as the owner's id (a sub-select): filtering through a join
        on the user name hid the ``(owner_id, -id)`` index from PostgreSQL's planner."""
        return queryset.filter(owner_id=Subquery(User.objects.filter(username=value).values("pk")[:1]))

    def filter_priority(self, queryset: QuerySet[Chain], name: str, value: str) -> QuerySet[Chain]:
        try:
            level = parse_priority(value)
        except ValueError:
            return queryset.none()
        return queryset.filter(priority=int(level)) if level != Priority.AUTO else queryset.filter(priority=-1)
