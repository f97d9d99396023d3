"""Pod settings per node group and environment: validated with the path of each bad value, merged
for a job (environment over group), saved only by cluster admins, audited, and read by bootstrap."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from apps.cluster import pod_settings
from apps.cluster import services as cluster_services
from apps.cluster.models import Environment, NodeGroup
from apps.core.errors import ApplicationError, PermissionDenied
from apps.core.models import AuditEntry
from tests.factories import UserFactory
from tests.permissions import db_state


@pytest.fixture(autouse=True)
def english():
    """The messages are translated: compare them in English whatever an earlier test activated."""
    with translation.override("en"):
        yield


FULL = {
    "node_selector": {"fabric": "ib", "nvidia.com/gpu.product": "H100-SXM"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "fabric", "value": "ib", "effect": "NoExecute", "tolerationSeconds": 600},
        {"operator": "Exists"},
    ],
    "runtime_class_name": "nvidia",
    "priority_class_name": "training-high",
    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "note": "any text, even spaces"},
    "resources": {"rdma/hca_shared_devices_a": 1, "nvidia.com/mig-1g.10gb": 2},
    "host_network": True,
    "memlock": True,
    "capabilities": ["cap_sys_ptrace", "NET_ADMIN"],
    "env": {"NCCL_IB_HCA": "mlx5", "NCCL_SOCKET_IFNAME": "ib0"},
}


def test_every_key_in_its_valid_form_is_accepted() -> None:
    assert pod_settings.validate(FULL) == []
    assert pod_settings.validate({}) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], ["pod settings must be a table (JSON object)"]),
        (
            {"tolerance": [], "hostNetwork": True},
            [
                "unknown key(s) hostNetwork, tolerance; allowed: node_selector, tolerations, runtime_class_name, "
                "priority_class_name, annotations, resources, host_network, memlock, capabilities, env"
            ],
        ),
        (
            {"tolerations": [{"key": "gpu", "effect": "NoSchedul"}]},
            ["tolerations[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute, not 'NoSchedul'"],
        ),
        (
            {"tolerations": [{"key": "gpu", "operator": "In"}]},
            ["tolerations[0].operator: must be one of Equal, Exists, not 'In'"],
        ),
        (
            {"tolerations": [{"effect": "NoSchedule"}]},
            ["tolerations[0]: a toleration without a key must have operator Exists"],
        ),
        (
            {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]},
            ["tolerations[0]: operator Exists takes no value"],
        ),
        (
            {"tolerations": [{"key": "gpu", "tolerationSeconds": 5}]},
            ["tolerations[0]: tolerationSeconds needs effect NoExecute"],
        ),
        (
            {"tolerations": [{"key": "gpu", "colour": "red"}]},
            ["tolerations[0]: unknown key(s) colour; allowed: key, operator, value, effect, tolerationSeconds"],
        ),
        ({"tolerations": {"key": "gpu"}}, ["tolerations: must be a list"]),
        (
            {"runtime_class_name": "Nvidia_GPU"},
            ["runtime_class_name: must be the name of a cluster object (lower-case DNS name)"],
        ),
        (
            {"priority_class_name": "system-node-critical"},
            ["priority_class_name: system-* priority classes belong to the cluster's own pods"],
        ),
        (
            {"annotations": {"rota.dev/stop-reason": "x"}},
            ["annotations.rota.dev/stop-reason: the rota.dev domain is Rota's own"],
        ),
        ({"annotations": {"note": 3}}, ["annotations.note: must be a text in quotes"]),
        (
            {"resources": {"nvidia.com/gpu": 1}},
            ["resources.nvidia.com/gpu: Rota requests CPU, memory and GPUs itself from the node's size"],
        ),
        ({"resources": {"rdma": 1}}, ["resources.rdma: needs a domain prefix, e.g. rdma/hca_shared_devices_a"]),
        (
            {"resources": {"rdma/hca": "1"}},
            ["resources.rdma/hca: must be a whole number ≥ 1 (extended resources are counted)"],
        ),
        ({"host_network": "yes"}, ["host_network: must be true or false"]),
        ({"memlock": 1}, ["memlock: must be true or false"]),
        (
            {"capabilities": ["ALL", "SYS ADMIN"]},
            [
                "capabilities[0]: 'ALL' is not a Linux capability that may be granted",
                "capabilities[1]: 'SYS ADMIN' is not a Linux capability that may be granted",
            ],
        ),
        ({"env": {"1BAD": "x"}}, ["env.1BAD: is not a valid variable name"]),
        (
            {"node_selector": {"fabric": "infini band"}},
            ["node_selector.fabric: is not a valid label value (at most 63 letters, digits, '-', '_' or '.')"],
        ),
        (
            {"node_selector": {"Bad_Prefix.COM/x": "1"}},
            [
                "node_selector.Bad_Prefix.COM/x: has an invalid prefix: "
                "it must be a lower-case DNS name such as example.com"
            ],
        ),
    ],
)
def test_each_problem_is_named_with_its_path(value: Any, expected: list[str]) -> None:
    assert pod_settings.validate(value) == expected


def test_merge_lets_the_environment_win_and_joins_lists() -> None:
    group = {
        "tolerations": [{"key": "fabric", "operator": "Exists"}],
        "annotations": {"a": "group", "b": "group"},
        "host_network": True,
        "memlock": True,
        "capabilities": ["NET_ADMIN"],
        "priority_class_name": "batch",
    }
    environment = {
        "tolerations": [{"key": "fabric", "operator": "Exists"}, {"key": "gpu", "operator": "Exists"}],
        "annotations": {"b": "env"},
        "memlock": False,
        "capabilities": ["SYS_PTRACE"],
        "runtime_class_name": "nvidia",
    }
    merged = pod_settings.merge(group, environment)
    assert merged == {
        "tolerations": [{"key": "fabric", "operator": "Exists"}, {"key": "gpu", "operator": "Exists"}],
        "annotations": {"a": "group", "b": "env"},
        "host_network": True,
        "memlock": False,
        "capabilities": ["NET_ADMIN", "SYS_PTRACE"],
        "priority_class_name": "batch",
        "runtime_class_name": "nvidia",
    }
    assert pod_settings.capability_names(merged) == ["NET_ADMIN", "SYS_PTRACE"]
    assert pod_settings.capability_names({"memlock": True, "capabilities": ["cap_net_admin"]}) == [
        "IPC_LOCK",
        "NET_ADMIN",
    ]
    assert pod_settings.merge({}, {}) == {}


@pytest.mark.django_db
def test_a_cluster_manager_sets_pod_settings_and_the_change_is_audited() -> None:
    manager = UserFactory(username="m", groups=["cluster_manager"])
    group = cluster_services.node_group_upsert(actor=manager, name="ib", pod_settings=FULL)
    group.refresh_from_db()
    assert group.pod_settings == FULL
    entry = AuditEntry.objects.get(action="node_group.upsert")
    assert (entry.before, entry.after["pod_settings"]) == (None, FULL)
    environment = cluster_services.environment_upsert(
        actor=manager, name="torch", image="torch:2", pod_settings={"runtime_class_name": "nvidia"}
    )
    assert Environment.objects.get(pk=environment.pk).pod_settings == {"runtime_class_name": "nvidia"}
    # Saving the same again changes and audits nothing; clearing is a change.
    cluster_services.node_group_upsert(actor=manager, name="ib", pod_settings=FULL)
    assert AuditEntry.objects.filter(action="node_group.upsert").count() == 1
    cluster_services.node_group_upsert(actor=manager, name="ib")
    assert NodeGroup.objects.get(name="ib").pod_settings == {}
    assert AuditEntry.objects.filter(action="node_group.upsert").count() == 2


@pytest.mark.django_db
def test_invalid_settings_are_refused_with_every_problem_and_nothing_changes() -> None:
    manager = UserFactory(username="m", groups=["cluster_manager"])
    cluster_services.node_group_upsert(actor=manager, name="ib", pod_settings={"host_network": True})
    cluster_services.environment_upsert(actor=manager, name="torch", image="torch:2")
    before = db_state()
    bad = {"host_network": "yes", "tolerations": [{"key": "gpu", "effect": "Never"}]}
    with pytest.raises(ApplicationError) as info:
        cluster_services.node_group_upsert(actor=manager, name="ib", pod_settings=bad)
    problems = [
        "tolerations[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute, not 'Never'",
        "host_network: must be true or false",
    ]
    assert info.value.message == "Pod settings: " + "; ".join(problems)
    assert info.value.fields == {"pod_settings": problems}
    with pytest.raises(ApplicationError, match=r"resources\.cpu: "):
        cluster_services.environment_upsert(
            actor=manager, name="torch", image="torch:2", pod_settings={"resources": {"cpu": 4}}
        )
    assert db_state() == before


@pytest.mark.django_db
def test_users_outside_the_cluster_admin_groups_change_nothing() -> None:
    cluster_services.node_group_upsert(actor=None, name="ib")
    actors = (UserFactory(username="plain"), UserFactory(username="q", groups=["quota_editor"]))
    before = db_state()
    for actor in actors:
        with pytest.raises(PermissionDenied):
            cluster_services.node_group_upsert(actor=actor, name="ib", pod_settings={"host_network": True})
        with pytest.raises(PermissionDenied):
            cluster_services.environment_upsert(actor=actor, name="x", image="i", pod_settings={"memlock": True})
    assert db_state() == before


BOOTSTRAP = """\
[[node_groups]]
name = "ib"

[node_groups.pod_settings]
host_network = true
memlock = true
resources = {"rdma/hca_shared_devices_a" = 1}

[[node_groups.pod_settings.tolerations]]
key = "fabric"
operator = "Exists"
effect = "NoSchedule"

[[environments]]
name = "torch"
image = "torch:2"
pod_settings = {runtime_class_name = "nvidia"}
"""


@pytest.mark.django_db
def test_bootstrap_reads_pod_settings_and_names_the_line_of_a_bad_one(tmp_path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(BOOTSTRAP)
    call_command("rota_bootstrap", str(path))
    assert NodeGroup.objects.get(name="ib").pod_settings == {
        "host_network": True,
        "memlock": True,
        "resources": {"rdma/hca_shared_devices_a": 1},
        "tolerations": [{"key": "fabric", "operator": "Exists", "effect": "NoSchedule"}],
    }
    assert Environment.objects.get(name="torch").pod_settings == {"runtime_class_name": "nvidia"}

    path.write_text('[[node_groups]]\nname = "a"\n\n[[node_groups]]\nname = "b"\npod_settings = {memlock = "yes"}\n')
    with pytest.raises(CommandError) as info:
        call_command("rota_bootstrap", str(path))
    assert f"{path}:4:" in str(info.value)
    assert "memlock: must be true or false" in str(info.value)
    assert not NodeGroup.objects.filter(name="a").exists()
