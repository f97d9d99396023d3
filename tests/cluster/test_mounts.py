"""Mount rules: safe templates, structured conditions, precedence and removal."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.cluster import services, templates
from apps.cluster.selectors import mounts_for
from apps.core.errors import ApplicationError
from tests.factories import UserFactory

TASK = {"id": "7", "chain_id": "abc123", "name": "train", "type": "training", "group": "training"}


def rule(name, source, path, **kw):
    return services.mount_rule_upsert(actor=None, name=name, source=source, container_path=path, **kw)


def test_template_expansion_is_a_whitelist():
    assert (
        templates.expand("/d/{user.username}/{task.chain_id}", {"user.username": "ann", "task.chain_id": "c1"})
        == "/d/ann/c1"
    )
    with pytest.raises(ValueError, match="unknown placeholder"):
        templates.expand("/d/{user.__class__}", {})
    with pytest.raises(ValueError, match="no safe value"):
        templates.expand("/d/{user.username}", {"user.username": "../etc"})
    assert templates.validate_template("/x/{os.system}") == [
        "unknown placeholder {os.system}; allowed: " + ", ".join(sorted(templates.ALLOWED))
    ]


@pytest.mark.django_db
def test_bad_rules_are_rejected():
    with pytest.raises(ApplicationError, match="absolute"):
        rule("rel", "/data", "relative/path")
    with pytest.raises(ApplicationError, match="unknown placeholder"):
        rule("ph", "/data/{user.secret}", "/d")
    with pytest.raises(ApplicationError, match="unknown condition"):
        rule("cond", "/data", "/d", conditions={"shell": "rm -rf"})


@pytest.mark.django_db
def test_precedence_conditions_and_removal():
    team = Group.objects.get_or_create(name="vision")[0]
    public = Group.objects.get_or_create(name="public")[0]
    ann = UserFactory(username="ann", team=team)
    ann.groups.add(team)
    rule("pub-data", "/shared/public", "/data", owner_groups=[public], read_only=True)
    rule("team-data", "/shared/{user.team}", "/data", owner_groups=[team])
    rule("ann-data", "/ann/special", "/data", owner_users=[ann], conditions={"task_type": "training"})
    rule("home", "/home/{user.username}", "/home/{user.username}", owner_groups=[public])
    rule("scratch", "/scratch/{task.chain_id}", "/scratch", owner_groups=[public], conditions={"role": "external"})
    mounts = {m.container_path: m for m in mounts_for(user=ann, task=TASK)}
    assert set(mounts) == {"/data", "/home/ann"}
    assert mounts["/data"].source == "/ann/special"  # own conditional rule wins
    assert mounts["/home/ann"].source == "/home/ann"

    jupyter = {m.container_path: m.source for m in mounts_for(user=ann, task=TASK | {"type": "jupyter"})}
    assert jupyter["/data"] == "/shared/vision"  # own rule's condition fails → group rule

    rule("no-data-for-vision", "/x", "/data", owner_groups=[team], action="remove")
    assert "/data" not in {m.container_path for m in mounts_for(user=ann, task=TASK)}

    bob = UserFactory(username="bob", role="external")
    bob_mounts = {m.container_path: m.source for m in mounts_for(user=bob, task=TASK)}
    assert bob_mounts == {"/data": "/shared/public", "/home/bob": "/home/bob", "/scratch": "/scratch/abc123"}
