"""/monitor/containers/: how each node group hosts development containers, edited by cluster
managers and ops through ``group_policy_set`` (audited), read by every admin."""

from __future__ import annotations

import pytest

from apps.containers.choices import GroupKind
from apps.containers.models import ContainerGroupPolicy
from apps.core.models import AuditEntry
from tests.factories import NodeFactory, NodeGroupFactory
from tests.permissions import db_state


@pytest.fixture
def groups(db):
    cpu = NodeGroupFactory(name="jupyter_cpu")
    gpu = NodeGroupFactory(name="jupyter_gpu")
    NodeFactory(name="j1", group=cpu)
    NodeFactory(name="j2", group=cpu)
    ContainerGroupPolicy.objects.create(node_group=gpu, kind=GroupKind.DEDICATED, idle_seconds=7200, grace_seconds=600)
    return cpu, gpu


def form_data(group, **values):
    base = {"kind": "shared", "idle_minutes": "240", "grace_minutes": "60", "gpu_util_threshold": "5"}
    base.update(values)
    return {f"g{group.pk}-{k}": v for k, v in base.items() if v is not None}


def test_every_group_is_listed_with_its_policy_or_the_defaults(admins, groups, django_assert_num_queries):
    NodeGroupFactory(name="training")  # one more group costs no query more
    with django_assert_num_queries(7):
        response = admins["ops"].get("/monitor/containers/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-container-policy="jupyter_cpu"' in page and 'data-container-policy="jupyter_gpu"' in page
    forms = {row.group.name: form for row, form in response.context["rows"]}
    assert forms["jupyter_gpu"].initial["kind"] == GroupKind.DEDICATED
    assert (forms["jupyter_gpu"].initial["idle_minutes"], forms["jupyter_gpu"].initial["grace_minutes"]) == (120, 10)
    assert forms["jupyter_cpu"].initial == {
        "kind": GroupKind.SHARED,
        "preemptible": False,
        "idle_reclaim": True,
        "idle_minutes": 240,
        "grace_minutes": 60,
        "gpu_util_threshold": 5,
    }
    rows = {row.group.name: row for row, _ in response.context["rows"]}
    assert (rows["jupyter_cpu"].nodes, rows["jupyter_cpu"].saved, rows["jupyter_gpu"].saved) == (2, False, True)


def test_a_quota_editor_reads_the_policies_without_a_form(admins, groups):
    response = admins["quota_editor"].get("/monitor/containers/")
    assert response.status_code == 200
    assert response.context["editable"] is False
    assert b"/monitor/containers/" in response.content and b'method="post"' not in response.content.split(b"<main")[-1]


def test_a_cluster_manager_saves_a_policy_and_it_is_audited(admins, groups):
    cpu, _ = groups
    data = form_data(
        cpu, kind="dedicated", preemptible="on", idle_minutes="30", grace_minutes="5", gpu_util_threshold="12"
    )
    response = admins["cluster_manager"].post(f"/monitor/containers/{cpu.pk}/", data)
    assert (response.status_code, response["Location"]) == (302, "/monitor/containers/")
    policy = ContainerGroupPolicy.objects.get(node_group=cpu)
    assert (policy.kind, policy.preemptible, policy.idle_reclaim) == (GroupKind.DEDICATED, True, False)
    assert (policy.idle_seconds, policy.grace_seconds, policy.gpu_util_threshold) == (1800, 300, 12)
    entry = AuditEntry.objects.get(action="container_policy.set")
    assert (entry.actor.username, entry.target_repr) == ("m-cluster", "jupyter_cpu")
    follow = admins["cluster_manager"].get("/monitor/containers/")
    assert "Container settings of jupyter_cpu saved." in [str(m) for m in follow.context["messages"]]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"kind": "huge"}, "Placement"),
        ({"idle_minutes": "0"}, "Idle time before the warning (minutes)"),
        ({"gpu_util_threshold": "101"}, "GPU utilisation counted as idle (%)"),
        ({"grace_minutes": None}, "Grace after the warning (minutes)"),
    ],
)
def test_bad_input_is_refused_with_the_field_named_and_nothing_changes(admins, groups, values, field):
    _, gpu = groups
    before = db_state()
    response = admins["ops"].post(f"/monitor/containers/{gpu.pk}/", form_data(gpu, **values), follow=True)
    assert response.status_code == 200
    errors = [str(m) for m in response.context["messages"]]
    assert len(errors) == 1 and errors[0].startswith(f"{field}: ")
    assert db_state() == before


def test_an_unknown_group_is_404(admins, groups):
    before = db_state()
    assert admins["ops"].post("/monitor/containers/999999/", {}).status_code == 404
    assert db_state() == before
