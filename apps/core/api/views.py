"""Audit log API (admins)."""

from __future__ import annotations

from typing import Any

import django_filters
from rest_framework import generics, serializers

from apps.accounts.permissions import IsQuotaAdmin
from apps.core.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "actor_name",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "before",
            "after",
            "note",
        ]


class AuditFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(lookup_expr="startswith")
    actor = django_filters.CharFilter(field_name="actor_name")
    target_type = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = AuditEntry
        fields = ["action", "actor", "target_type", "since"]


class AuditListView(generics.ListAPIView):
    """Every admin write, newest first (root and quota editors)."""

    permission_classes = [IsQuotaAdmin]
    serializer_class = AuditEntrySerializer
    filterset_class = AuditFilterSet

    def get_queryset(self) -> Any:
        return AuditEntry.objects.all()
