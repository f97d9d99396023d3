"""rota_bootstrap: applies the example, is idempotent, names the line of bad input, applies nothing then."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.cluster.models import Environment, MountRule, Node, NodeGroup
from apps.core.models import AuditEntry
from apps.quotas.models import Quota
from apps.quotas.selectors import quota_resolve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


def counts() -> tuple[int, ...]:
    return (
        NodeGroup.objects.count(),
        Node.objects.count(),
        Environment.objects.count(),
        MountRule.objects.count(),
        User.objects.count(),
        Quota.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.fixture
def demo_password(monkeypatch):
    monkeypatch.setenv("ROTA_DEMO_PASSWORD", "demo-pass-123")


@pytest.mark.django_db
def test_example_cluster_applies_and_is_idempotent(demo_password, capsys):
    call_command("rota_bootstrap", str(EXAMPLE))
    first = counts()
    assert first[:6] == (2, 5, 1, 1, 2, 9)
    assert sorted(Node.objects.filter(group__name="training").values_list("name", flat=True)) == [
        "local-0",
        "local-1",
        "local-2",
        "local-3",
    ]
    admin = User.objects.get(username="admin")
    assert admin.check_password("demo-pass-123")
    assert admin.is_superuser and admin.in_admin_group()
    alice = User.objects.get(username="alice")
    assert quota_resolve(user=alice).nodes("training", 10) == 2
    assert quota_resolve(user=alice).default_environment == "default"
    capsys.readouterr()

    call_command("rota_bootstrap", str(EXAMPLE))
    assert counts() == first
    assert "0 change(s)" in capsys.readouterr().out


BAD_NODE_GROUP = """\
[[node_groups]]
name = "training"

[[nodes]]
name = "n1"
group = "training"

[[nodes]]
name = "n2"
group = "nope"
"""


@pytest.mark.django_db
def test_bad_input_names_the_line_and_applies_nothing(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_NODE_GROUP)
    with pytest.raises(CommandError) as info:
        call_command("rota_bootstrap", str(path))
    message = str(info.value)
    assert f"{path}:8:" in message
    assert "unknown node group 'nope'" in message
    assert "nothing was applied" in message
    assert NodeGroup.objects.count() == 0
    assert Node.objects.count() == 0
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[nodes]\nname = 1", "bad.toml"),  # TOML syntax error: tomllib's message has the line
        ("[[hosts]]\nname = 'x'", "unknown section"),
        ("[[node_groups]]\nname = 'Bad Name!'", "name"),
        ("[[node_groups]]\nname = 'ok'\ncolour = 'red'", "unknown key(s) colour"),
        ("[[quotas]]\nsubject = 'group:public'\nkind = 'node'\nnode_group = 'x'\nvalue = 1", "unknown node group"),
        (
            "[[node_groups]]\nname='t'\n[[quotas]]\nsubject = 'public'\nkind = 'node'\nnode_group = 't'\nvalue = 1",
            "subject must look like",
        ),
        (
            "[[node_groups]]\nname='t'\n[[quotas]]\nsubject = 'group:public'\nkind = 'node'\nnode_group = 't'\n"
            "priority = 'URGENT'\nvalue = 1",
            "Unknown priority",
        ),
        ("[[mounts]]\nname = 'm'\nsource = '/data/{user.password}'\ncontainer_path = '/d'", "unknown placeholder"),
        ("[[users]]\nusername = 'u'\npassword_env = 'ROTA_TEST_UNSET_VAR'", "is not set"),
    ],
)
def test_bad_inputs_have_clear_errors(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CommandError, match=None) as info:
        call_command("rota_bootstrap", str(path))
    assert needle in str(info.value)
    assert counts()[:6] == (0, 0, 0, 0, 0, 0)


@pytest.mark.django_db
def test_yaml_file_with_line_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "node_groups:\n  - name: training\nnodes:\n  - name: y1\n    group: training\n  - name: y2\n    group: ghost\n"
    )
    with pytest.raises(CommandError) as info:
        call_command("rota_bootstrap", str(path))
    assert f"{path}:6:" in str(info.value)
    path.write_text("node_groups:\n  - name: training\nnodes:\n  - name: y1\n    group: training\n    gpu_count: 8\n")
    call_command("rota_bootstrap", str(path))
    assert Node.objects.get(name="y1").gpu_count == 8


@pytest.mark.django_db
def test_unsupported_extension(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{}")
    with pytest.raises(CommandError, match=r"use a \.toml"):
        call_command("rota_bootstrap", str(path))
