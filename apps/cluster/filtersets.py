"""One FilterSet per list, shared by the API, the portal and /monitor."""

import django_filters

from apps.cluster.choices import NodeState
from apps.cluster.models import Node


class NodeFilterSet(django_filters.FilterSet):
    group = django_filters.CharFilter(field_name="group__name")
    state = django_filters.MultipleChoiceFilter(choices=NodeState.choices)
    room = django_filters.CharFilter()
    gpu_model = django_filters.CharFilter()
    name = django_filters.CharFilter(lookup_expr="icontains")
    min_gpus = django_filters.NumberFilter(field_name="gpu_count", lookup_expr="gte")

    class Meta:
        model = Node
        fields = ["group", "state", "room", "gpu_model", "name", "min_gpus"]
