"""Enumerations of quotas."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class QuotaKind(models.TextChoices):
    NODE = "node", _("Nodes held at once (per node group and priority)")
    NODE_LIMIT = "node_limit", _("Cap on the node quota (per node group and priority; the smallest wins)")
    JUPYTER_CONTAINERS = "jupyter_containers", _("Dev containers (per node group)")
    JUPYTER_CPU = "jupyter_cpu", _("Dev container CPUs (per node group)")
    JUPYTER_MEMORY_GIB = "jupyter_memory_gib", _("Dev container memory in GiB (per node group)")
    JUPYTER_GPUS = "jupyter_gpus", _("Dev container GPUs (per node group)")
    JUPYTER_PORTS = "jupyter_ports", _("Dev container TCP ports exposed on nodes (per node group)")
    ENVIRONMENT = "environment", _("May use an environment (value orders the default: highest first)")


# Kinds keyed by (node group, priority), by node group only, or by environment.
PER_GROUP_AND_PRIORITY = frozenset({QuotaKind.NODE, QuotaKind.NODE_LIMIT})
PER_GROUP = frozenset(
    {
        QuotaKind.JUPYTER_CONTAINERS,
        QuotaKind.JUPYTER_CPU,
        QuotaKind.JUPYTER_MEMORY_GIB,
        QuotaKind.JUPYTER_GPUS,
        QuotaKind.JUPYTER_PORTS,
    }
)
