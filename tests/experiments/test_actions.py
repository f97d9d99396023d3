"""``chain_actions``: one answer to "what may this user do to this chain", for every role and state.

The table below is the specification, written out by hand; ``ACTIONS_BY_STATUS`` derives it from
the transitions table. Then every service is asked to do every action as every role to a chain in
every state: it refuses exactly what ``chain_actions`` refuses (403 or 404 by role, 409 by state),
and a refusal changes nothing. The job page, the list and the API offer exactly the allowed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.cluster import services as cluster_services
from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from apps.experiments import lifecycle, services
from apps.experiments.actions import ACTIONS_BY_STATUS, chain_actions, latest_worker_status
from apps.experiments.choices import ChainAction, ChainStatus, RankStatus, StopReason, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Chain
from apps.quotas import services as quota_services
from tests.conftest import Cluster
from tests.factories import UserFactory
from tests.permissions import db_state

S, A = ChainStatus, ChainAction
QUEUED_MAY = {A.STOP, A.SUSPEND, A.SET_PRIORITY, A.MOVE_GROUP, A.EDIT}
HOLDING_MAY = {A.STOP, A.MARK_OUTCOME, A.SUSPEND, A.SET_PRIORITY, A.EDIT}
RETRY_MAY = {A.RESUME, A.EDIT}

#: what the owner (and a platform admin) may do to a chain in each status
OWNER_MAY: dict[str, set[ChainAction]] = {
    S.WAITING: QUEUED_MAY,
    S.SUSPENDED: QUEUED_MAY,
    S.HELD: {A.STOP, A.RESUME, A.SET_PRIORITY, A.MOVE_GROUP, A.EDIT},
    S.STARTING: HOLDING_MAY,
    S.RUNNING: HOLDING_MAY,
    S.SUSPENDING: HOLDING_MAY,
    S.STOPPING: {A.STOP, A.MARK_OUTCOME, A.SET_PRIORITY, A.EDIT},
    S.SUCCEEDED: {A.EDIT},
    S.FAILED: RETRY_MAY,
    S.STOPPED: RETRY_MAY,
    S.CANCELED: RETRY_MAY,
}

#: role → (may act, how a service refuses them: 403 for who sees the chain, 404 for who does not)
ROLES: dict[str, tuple[bool, type[ApplicationError] | None]] = {
    "owner": (True, None),
    "root": (True, None),
    "ops": (True, None),
    "task_admin": (True, None),
    "superuser": (True, None),
    "teammate": (False, PermissionDenied),  # sees the shared chain, may not act on it
    "other": (False, NotFound),
    "cluster_manager": (False, NotFound),  # admin groups without power over jobs
    "quota_editor": (False, NotFound),
    "forum_admin": (False, NotFound),
}


def test_the_derived_table_is_the_specification():
    assert set(ACTIONS_BY_STATUS) == set(ChainStatus.values)
    assert {status: set(actions) for status, actions in ACTIONS_BY_STATUS.items()} == OWNER_MAY


def test_latest_worker_status_inverts_the_chain_status_of_lifecycle():
    for worker_status in set(WorkerStatus) - {WorkerStatus.SUSPENDED}:  # a suspended attempt is never the latest
        for held in (False, True):
            for index in (0, 1):
                attempt = Attempt(worker_status=worker_status, index=index)
                status = lifecycle.chain_status_for(Chain(held=held), attempt)
                assert latest_worker_status(status) == worker_status


# --- building chains in every state -------------------------------------------------------------


class World:
    """Alice's team (with Carol), everyone of ``ROLES``, a cluster of six nodes in ``training`` and
    one in ``spare`` (where a move goes), quotas at NORMAL for all."""

    def __init__(self, workspace: Any) -> None:
        account_services.ensure_admin_groups()
        self.cluster = Cluster(6, {10: 6, 20: 6})
        spare = cluster_services.node_group_upsert(actor=None, name="spare")
        cluster_services.node_upsert(actor=None, name="s0", group=spare, gpu_count=8, room="a")
        public = Group.objects.get(name="public")
        for level in (10, 20):
            quota_services.quota_set(actor=None, group=public, kind="node", node_group=spare, priority=level, value=1)
        team = Group.objects.create(name="vision")
        self.users: dict[str, User] = {
            "owner": UserFactory(username="alice", team=team),
            "teammate": UserFactory(username="carol", team=team),
            "other": UserFactory(username="bob"),
            "superuser": UserFactory(username="su", is_superuser=True),
        }
        for group in ("root", "ops", "task_admin", "cluster_manager", "quota_editor", "forum_admin"):
            self.users[group] = UserFactory(username=f"admin-{group}", groups=[group])
        self.workspace = workspace
        self.free_nodes = list(self.cluster.nodes)

    @property
    def owner(self) -> User:
        return self.users["owner"]

    def chain_in(self, status: str) -> Chain:
        """A fresh chain of Alice, shared with her team, in ``status`` (played through lifecycle;
        no scheduling pass runs: nothing commits)."""
        chain = services.experiment_submit(
            user=self.owner,
            name=f"job-{status}",
            workspace=str(self.workspace),
            entrypoint="train.py",
            group="training",
            priority=10,
            shared_with_team=True,
        )
        attempt_id = chain.latest_attempt_id
        assert attempt_id is not None
        if status == S.HELD:
            services.experiment_suspend(actor=self.owner, chain=chain)
        elif status == S.CANCELED:
            lifecycle.attempt_mark_finished(attempt_id=attempt_id, status=WorkerStatus.CANCELED)
        elif status != S.WAITING:
            node = self.free_nodes.pop()
            assert lifecycle.attempt_start(attempt_id=attempt_id, priority=10, quota_priority=10, node_ids=[node.pk])
            lifecycle.sync_chain(chain_id=chain.pk)
            if status != S.STARTING:
                lifecycle.rank_update(attempt_id=attempt_id, rank=0, status=RankStatus.RUNNING)
                assert lifecycle.attempt_mark_running(attempt_id=attempt_id)
            if status in (S.SUSPENDING, S.SUSPENDED):
                assert lifecycle.attempt_request_suspend(attempt_id=attempt_id, reason=SuspendReason.PREEMPTED)
                lifecycle.sync_chain(chain_id=chain.pk)
                if status == S.SUSPENDED:
                    assert lifecycle.attempt_mark_suspended(attempt_id=attempt_id) is not None
            elif status in (S.STOPPING, S.STOPPED):
                assert lifecycle.transition(attempt_id=attempt_id, target=WorkerStatus.STOPPING, stop_reason="user")
                lifecycle.sync_chain(chain_id=chain.pk)
                if status == S.STOPPED:
                    assert lifecycle.attempt_mark_finished(attempt_id=attempt_id, status=WorkerStatus.STOPPED)
            elif status in (S.SUCCEEDED, S.FAILED):
                assert lifecycle.attempt_mark_finished(attempt_id=attempt_id, status=status)
            if status in (S.SUCCEEDED, S.FAILED, S.STOPPED, S.SUSPENDED):
                self.free_nodes.append(node)
        chain = Chain.objects.select_related("owner").get(pk=chain.pk)
        assert chain.status == status
        return chain


@pytest.fixture
def world(db, workspace) -> World:
    return World(workspace)


#: each action, as the services that do it (EDIT: every edit of a chain)
CALLS: dict[ChainAction, list[Callable[[User, Chain], Any]]] = {
    A.STOP: [lambda u, c: services.experiment_stop(actor=u, chain=c)],
    A.MARK_OUTCOME: [
        lambda u, c: services.experiment_stop(actor=u, chain=c, outcome=WorkerStatus.SUCCEEDED),
        lambda u, c: services.experiment_stop(actor=u, chain=c, outcome=WorkerStatus.FAILED),
    ],
    A.SUSPEND: [lambda u, c: services.experiment_suspend(actor=u, chain=c)],
    A.RESUME: [lambda u, c: services.experiment_resume(actor=u, chain=c)],
    A.SET_PRIORITY: [
        lambda u, c: services.experiment_set_priority(user=u, chain=c, priority=20),
        lambda u, c: services.experiment_set_priority(user=u, chain=c, custom_rank=1.0),
    ],
    A.MOVE_GROUP: [lambda u, c: services.experiment_move_group(actor=u, chain=c, group="spare")],
    A.EDIT: [
        lambda u, c: services.experiment_tag(user=u, chain=c, tag="baseline"),
        lambda u, c: services.experiment_untag(user=u, chain=c, tag="baseline"),
        lambda u, c: services.experiment_star(user=u, chain=c, starred=True),
        lambda u, c: services.experiment_share(user=u, chain=c, shared=False),
        lambda u, c: services.experiment_set_notes(user=u, chain=c, notes="tried a smaller lr"),
    ],
}


class _Undo(Exception):
    """Rolls an allowed action back, so the next one finds the chain as it was."""


WRITES = ("INSERT", "UPDATE", "DELETE")


def outcome(call: Callable[[User, Chain], Any], user: User, chain: Chain) -> ApplicationError | None:
    """Run ``call`` and roll it back; its refusal, or None. A refusal must not have written a row
    (not even one its transaction rolled back)."""
    refused: ApplicationError | None = None
    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            try:
                call(user, Chain.objects.get(pk=chain.pk))
            except ApplicationError as exc:
                refused = exc
            else:
                raise _Undo
    except _Undo:
        return None
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]
    assert not writes, f"{refused!r} was refused after writing: {writes}"
    return refused


@pytest.mark.parametrize("status", list(ChainStatus))
def test_services_refuse_exactly_what_chain_actions_refuses(world, status):
    chain = world.chain_in(status)
    before = db_state()
    for role, (may_act, refusal) in ROLES.items():
        user = User.objects.get(pk=world.users[role].pk)
        expected = OWNER_MAY[status] if may_act else set()
        assert chain_actions(user=user, chain=chain) == expected, role
        for action, calls in CALLS.items():
            for call in calls:
                refused = outcome(call, user, chain)
                if action in expected:
                    assert refused is None, f"{role} may {action} a {status} job, but: {refused!r}"
                elif not may_act:
                    assert type(refused) is refusal, f"{role}, {action} of a {status} job: {refused!r}"
                else:
                    assert type(refused) is Conflict, f"{role}, {action} of a {status} job: {refused!r}"
    assert db_state() == before  # every refusal changed nothing, every allowed action was rolled back


def test_a_refused_stop_says_why_in_words_a_person_can_act_on(world):
    waiting, done = world.chain_in(S.WAITING), world.chain_in(S.SUCCEEDED)
    with pytest.raises(Conflict, match="has not run, so it can only be stopped \\(canceled\\), not marked succeeded"):
        services.experiment_stop(actor=world.owner, chain=waiting, outcome=WorkerStatus.SUCCEEDED)
    with pytest.raises(Conflict, match="This job has already finished \\(Succeeded\\)"):
        services.experiment_stop(actor=world.owner, chain=done)
    with pytest.raises(Conflict, match="This job succeeded; submit it again"):
        services.experiment_resume(actor=world.owner, chain=done)
    with pytest.raises(Conflict, match="Only a waiting job can move to another node group \\(this one is Succeeded\\)"):
        services.experiment_move_group(actor=world.owner, chain=done, group="spare")


def test_a_suspend_of_a_job_the_scheduler_is_suspending_makes_it_held_after(world):
    chain = world.chain_in(S.SUSPENDING)
    services.experiment_suspend(actor=world.owner, chain=chain)
    attempt = Attempt.objects.get(pk=chain.latest_attempt_id)
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDING, SuspendReason.USER)
    lifecycle.attempt_mark_suspended(attempt_id=attempt.pk)
    chain.refresh_from_db()
    assert chain.status == S.HELD


def test_a_stop_of_a_stopping_job_changes_only_how_it_is_recorded(world):
    chain = world.chain_in(S.STOPPING)
    attempt_id = chain.latest_attempt_id
    before = db_state()
    services.experiment_stop(actor=world.owner, chain=chain)  # asked again: nothing to do
    assert db_state() == before
    services.experiment_stop(actor=world.owner, chain=chain, outcome=WorkerStatus.FAILED)
    assert Attempt.objects.get(pk=attempt_id).stop_reason == StopReason.MARKED_FAILED


# --- what the pages and the API offer -----------------------------------------------------------

#: the form each action posts to on the job page
PAGE_FORMS = {
    A.STOP: "/experiments/{pk}/stop/",
    A.MARK_OUTCOME: "/experiments/{pk}/stop/succeeded/",
    A.MOVE_GROUP: "/experiments/{pk}/move/",
    A.SUSPEND: "/experiments/{pk}/suspend/",
    A.RESUME: "/experiments/{pk}/resume/",
    A.SET_PRIORITY: "/experiments/{pk}/priority/",
    A.EDIT: "/experiments/{pk}/tags/",
}


@pytest.fixture
def every_state(world) -> dict[str, Chain]:
    return {status: world.chain_in(status) for status in ChainStatus}


@pytest.mark.parametrize("role", ["owner", "ops", "teammate"])
def test_the_job_page_offers_exactly_the_allowed_actions(world, every_state, browser_for, role, plain_static_storage):
    page = browser_for(world.users[role])
    may_act = ROLES[role][0]
    for status, chain in every_state.items():
        body = page.get(f"/experiments/{chain.pk}/").content.decode()
        offered = {action for action, url in PAGE_FORMS.items() if f'action="{url.format(pk=chain.pk)}"' in body}
        expected = OWNER_MAY[status] & set(PAGE_FORMS) if may_act else set()
        assert offered == expected, f"{role}, {status}"


@pytest.mark.parametrize("role", ["owner", "task_admin", "teammate"])
def test_the_list_and_the_api_offer_exactly_the_allowed_actions(
    world, every_state, browser_for, make_client, role, plain_static_storage
):
    user = world.users[role]
    may_act = ROLES[role][0]
    rows = make_client(user).get("/api/v1/experiments/?page_size=50").json()["results"]
    assert {row["id"]: set(row["actions"]) for row in rows} == {
        chain.pk: {a.value for a in OWNER_MAY[status]} if may_act else set() for status, chain in every_state.items()
    }
    detail = make_client(user).get(f"/api/v1/experiments/{every_state[S.HELD].pk}/").json()
    assert detail["actions"] == (["stop", "resume", "set_priority", "move_group", "edit"] if may_act else [])
    assert detail["can_act"] is may_act
    body = browser_for(user).get("/experiments/?scope=all&per_page=50").content.decode()
    for chain in every_state.values():
        selectable = f'name="ids" value="{chain.pk}"' in body
        taggable = f'action="/experiments/{chain.pk}/tags/"' in body
        assert selectable is taggable is may_act, chain.status


def test_the_api_schema_lists_the_actions(db, make_client):
    schema = make_client(UserFactory(username="alice")).get("/api/schema/?format=json").json()
    schemas = schema["components"]["schemas"]
    for serializer in ("ChainList", "ChainDetail"):
        field = schemas[serializer]["properties"]["actions"]
        assert field["type"] == "array" and field["items"] == {"$ref": "#/components/schemas/ChainActionEnum"}
        assert "actions" in schemas[serializer]["required"]
    assert schemas["ChainActionEnum"]["enum"] == ChainAction.values


def test_actions_of_list_rows_cost_no_query(world, every_state):
    rows = list(Chain.objects.filter(pk__in=[c.pk for c in every_state.values()]))
    user = User.objects.get(pk=world.users["ops"].pk)
    user.group_names()  # the one query for the user's groups, as the list's visibility check makes it
    with CaptureQueriesContext(connection) as queries:
        answers = [chain_actions(user=user, chain=chain) for chain in rows]
    assert len(queries) == 0
    assert answers == [ACTIONS_BY_STATUS[chain.status] for chain in rows]


def test_a_template_asking_for_an_unknown_action_fails_loudly():
    from apps.web.templatetags.rota import allows

    assert allows(frozenset({A.STOP}), "stop") is True
    assert allows(frozenset({A.STOP}), "resume") is False
    with pytest.raises(ValueError, match="'stpo' is not a valid ChainAction"):
        allows(frozenset({A.STOP}), "stpo")
