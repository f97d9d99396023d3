"""Quota rows: a subject (one user or one group) × a resource → a number."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.cluster.models import Environment, NodeGroup
from apps.core.priorities import Priority
from apps.quotas.choices import QuotaKind


class Quota(models.Model):
    """One quota row. Exactly one of ``user`` / ``group`` is set.

    ``resource`` is a canonical key derived from kind, node group, priority and environment (e.g.
    ``node:training:HIGH``); it makes "one row per subject and resource" a database constraint.
    Resolution rules live in ``apps.quotas.selectors``. Writes go through ``apps.quotas.services``.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas")
    kind = models.CharField(_("kind"), max_length=24, choices=QuotaKind.choices)
    node_group = models.ForeignKey(NodeGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas")
    priority = models.IntegerField(_("priority"), null=True, blank=True, choices=Priority.choices)
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas")
    resource = models.CharField(max_length=160, editable=False)
    value = models.BigIntegerField(_("value"))
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "resource"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group__isnull=True))
                | (Q(user__isnull=True) & Q(group__isnull=False)),
                name="quota_exactly_one_subject",
            ),
            models.CheckConstraint(condition=Q(value__gte=0), name="quota_value_non_negative"),
            models.UniqueConstraint(
                fields=["user", "resource"], condition=Q(user__isnull=False), name="quota_unique_user_resource"
            ),
            models.UniqueConstraint(
                fields=["group", "resource"], condition=Q(group__isnull=False), name="quota_unique_group_resource"
            ),
        ]
        indexes = [models.Index(fields=["kind", "node_group"])]

    def __str__(self) -> str:
        return f"{self.subject_label} {self.resource} = {self.value}"

    @property
    def subject_label(self) -> str:
        return f"user:{self.user}" if self.user_id else f"group:{self.group}"

    @staticmethod
    def make_resource(kind: str, node_group: str | None, priority: int | None, environment: str | None) -> str:
        if kind in (QuotaKind.NODE, QuotaKind.NODE_LIMIT):
            return f"{kind}:{node_group}:{Priority(priority or 0).label}"
        if kind == QuotaKind.ENVIRONMENT:
            return f"{kind}:{environment}"
        return f"{kind}:{node_group}"
