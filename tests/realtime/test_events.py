"""Events: typed, sent after commit and never on rollback, in exact numbers per service, and
delivered over ``/ws/events/`` only to those who may see them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import transaction

from apps.cluster import services as cluster_services
from apps.cluster.events import NodeStateChanged
from apps.core.events import NotificationCreated
from apps.experiments import events, services
from apps.experiments.choices import WorkerStatus
from portal.realtime import ADMINS_GROUP, capture_events, chain_group, send_event_on_commit, user_group
from tests.realtime.conftest import communicator, finish, receive_until, run, suspend_and_requeue


class Rollback(Exception):
    pass


# --- the door ---------------------------------------------------------------------------------


def test_events_reject_unknown_fields():
    with pytest.raises(TypeError):
        events.QuotaUsageChanged(user_id=1, color="red")
    with pytest.raises(TypeError):
        NodeStateChanged(node_id=1, name="n1", group="g", state="ready", previous_state="x", reason="", extra=1)
    with pytest.raises(TypeError):
        NotificationCreated(notification_id=1, user_id=1, kind="reply", title="t", url="/", unread_count=1, x=2)


@pytest.mark.django_db
def test_the_door_rejects_what_is_not_a_typed_event_or_a_valid_group():
    @dataclass
    class Untyped:
        user_id: int

    @dataclass
    class Bad:
        type: str = "Not Dotted"

    @dataclass(kw_only=True)
    class NotJson:
        type: str = "test.thing"
        value: object

    for event in ({"type": "chain.status"}, Untyped(user_id=1), Bad()):
        with pytest.raises(TypeError):
            send_event_on_commit(["user.1"], event)
    with pytest.raises(TypeError):
        send_event_on_commit(["user.1"], NotJson(value=object()))
    for groups in ([], ["has space"], ["x" * 100]):
        with pytest.raises(ValueError):
            send_event_on_commit(groups, events.QuotaUsageChanged(user_id=1))


@pytest.mark.django_db(transaction=True)
def test_sent_after_commit_and_never_on_rollback():
    with capture_events() as sent:
        with transaction.atomic():
            send_event_on_commit([user_group(1)], events.QuotaUsageChanged(user_id=1))
            assert sent == []
        assert sent.types() == ["quota.usage"]
        with pytest.raises(Rollback), transaction.atomic():  # noqa: PT012 - the raise is the rollback
            send_event_on_commit([user_group(1)], events.QuotaUsageChanged(user_id=1))
            raise Rollback
        assert len(sent) == 1
    assert sent[0].groups == ("user.1",)
    assert sent[0].body == {"type": "quota.usage", "user_id": 1}


# --- exact counts per service -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_exact_events_of_a_job_lifecycle(cluster, submit, user):
    both = (user_group(user.pk),)
    with capture_events() as sent:
        chain = submit(user)
    mine = (user_group(user.pk), chain_group(chain.pk))
    # Submitted (waiting), then the inline scheduling pass placed it (starting), charged quota and
    # told the admins' pages that a pass started something.
    assert [(s.type, s.groups, s.body.get("status")) for s in sent] == [
        ("chain.status", mine, "waiting"),
        ("chain.status", mine, "starting"),
        ("quota.usage", both, None),
        ("scheduler.pass", (ADMINS_GROUP,), None),
    ]
    assert sent[-1].body == {"type": "scheduler.pass", "started": 1, "suspended": 0}

    with capture_events() as sent:
        run(chain)
    assert [(s.type, s.groups) for s in sent] == [("attempt.started", mine), ("chain.status", mine)]
    assert sent[0].body["nodes"] == ["n0"]
    assert sent[1].body["status"] == "running"

    with capture_events() as sent:
        suspend_and_requeue(chain)
    # suspending, then the attempt ended and the next one waits, then the pass placed it again.
    assert [(s.type, s.body.get("status")) for s in sent] == [
        ("chain.status", "suspending"),
        ("attempt.suspended", None),
        ("chain.status", "suspended"),
        ("chain.status", "starting"),
        ("quota.usage", None),
        ("scheduler.pass", None),
    ]

    with capture_events() as sent:
        finish(chain)
    assert [(s.type, s.body.get("worker_status"), s.body.get("status")) for s in sent] == [
        ("attempt.finished", "succeeded", None),
        ("chain.status", "succeeded", "succeeded"),
    ]


@pytest.mark.django_db(transaction=True)
def test_sharing_tells_the_team_and_unsharing_makes_its_sockets_recheck(cluster, submit, user):
    from django.contrib.auth.models import Group

    user.team = Group.objects.create(name="vision")
    user.save(update_fields=["team"])
    chain = submit(user)
    with capture_events() as sent:
        services.experiment_share(user=user, chain=chain, shared=True)
    assert [(s.type, s.groups) for s in sent] == [
        ("chain.status", (user_group(user.pk), chain_group(chain.pk), f"team.{user.team_id}"))
    ]
    with capture_events() as sent:
        services.experiment_share(user=user, chain=chain, shared=False)
    assert [(s.type, s.groups, s.body) for s in sent] == [
        (
            "chain.visibility",
            (chain_group(chain.pk), f"team.{user.team_id}"),
            {"type": "chain.visibility", "chain_id": chain.pk},
        )
    ]
    with capture_events() as sent:
        services.experiment_share(user=user, chain=chain, shared=False)  # not shared: nobody to tell
    assert sent == []
    with capture_events() as sent:
        services.experiment_stop(actor=user, chain=chain)
    assert all(f"team.{user.team_id}" not in s.groups for s in sent) and sent


@pytest.mark.django_db(transaction=True)
def test_exact_events_of_user_actions(cluster, submit, user):
    big = submit(user, nodes=4)
    run(big)
    waiting = submit(user)  # no node left: it waits
    with capture_events() as sent:
        services.experiment_stop(actor=user, chain=waiting)
    assert sent.types() == ["attempt.finished", "chain.status"]
    assert sent[0].body["worker_status"] == WorkerStatus.CANCELED

    with capture_events() as sent:
        services.experiment_suspend(actor=user, chain=big)
    assert [(s.type, s.body["status"]) for s in sent] == [("chain.status", "suspending")]

    with capture_events() as sent, pytest.raises(Rollback), transaction.atomic():  # noqa: PT012
        services.experiment_stop(actor=user, chain=big)
        raise Rollback
    assert sent == []


@pytest.mark.django_db(transaction=True)
def test_exact_node_events_go_to_admins_only(cluster, admin_user):
    node = cluster.nodes[3]
    with capture_events() as sent:
        cluster_services.node_disable(actor=admin_user, node=node, reason="GPU 3 has ECC errors")
        cluster_services.node_disable(actor=admin_user, node=node, reason="still broken")
        cluster_services.node_enable(actor=admin_user, node=node)
        cluster_services.node_enable(actor=admin_user, node=node)  # already enabled: no change, no event
        assert cluster_services.node_observe_readiness(name="n2", ready=False, reason="kubelet stopped")
        assert not cluster_services.node_observe_readiness(name="n2", ready=False, reason="kubelet stopped")
        assert cluster_services.node_observe_readiness(name="n2", ready=True)
    assert [(s.groups, s.body["name"], s.body["previous_state"], s.body["state"]) for s in sent] == [
        ((ADMINS_GROUP,), "n3", "ready", "disabled"),
        ((ADMINS_GROUP,), "n3", "disabled", "disabled"),
        ((ADMINS_GROUP,), "n3", "disabled", "ready"),
        ((ADMINS_GROUP,), "n2", "ready", "not_ready"),
        ((ADMINS_GROUP,), "n2", "not_ready", "ready"),
    ]
    assert sent[0].body == {
        "type": "node.state",
        "node_id": node.pk,
        "name": "n3",
        "group": "training",
        "state": "disabled",
        "previous_state": "ready",
        "reason": "GPU 3 has ECC errors",
    }
    with capture_events() as sent, pytest.raises(Rollback), transaction.atomic():  # noqa: PT012
        cluster_services.node_disable(actor=admin_user, node=node, reason="oops")
        raise Rollback
    assert sent == []


# --- over the socket --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_socket_gets_events_after_commit_and_nothing_on_rollback(ws_app, cluster, submit, user, token_for):
    chain = await database_sync_to_async(submit)(user)
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(ws_app, "/ws/events/", token=token)
    assert (await comm.connect())[0]

    def suspend_in_a_transaction(commit: bool) -> bool:
        with transaction.atomic():
            services.experiment_suspend(actor=user, chain=chain)
            # Still inside the transaction: nothing reached the socket.
            quiet = async_to_sync(comm.receive_nothing)(0.2)
            if not commit:
                raise Rollback
        return quiet

    with pytest.raises(Rollback):
        await database_sync_to_async(suspend_in_a_transaction)(False)
    assert await comm.receive_nothing(0.3)

    assert await database_sync_to_async(suspend_in_a_transaction)(True)
    message = await comm.receive_json_from()
    assert (message["type"], message["chain_id"], message["status"]) == ("chain.status", chain.pk, "suspending")
    assert await comm.receive_nothing()
    await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_subscribing_to_an_own_chain_does_not_duplicate_events(ws_app, cluster, submit, user, token_for):
    chain = await database_sync_to_async(submit)(user)
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "subscribe", "chain": chain.pk})
    assert await comm.receive_json_from() == {"type": "subscribed", "chain": chain.pk}
    await database_sync_to_async(run)(chain)  # attempt.started + chain.status, each to user.<id> and chain.<id>
    received = await receive_until(comm, lambda m: len(m) >= 2)
    assert [m["type"] for m in received] == ["attempt.started", "chain.status"]
    assert await comm.receive_nothing()
    await comm.send_json_to({"action": "unsubscribe", "chain": chain.pk})
    assert await comm.receive_json_from() == {"type": "unsubscribed", "chain": chain.pk}
    await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_many_sockets_each_get_every_event_once_in_commit_order(ws_app, cluster, submit, user, token_for):
    """The fan-out: one process, many sockets in both groups of each event (production: one Redis
    pub/sub message per group for the whole process, handed to every socket by the process)."""
    import asyncio

    chain = await database_sync_to_async(submit)(user)
    token = await database_sync_to_async(token_for)(user)
    sockets = [communicator(ws_app, "/ws/events/", token=token) for _ in range(25)]
    for comm in sockets:
        assert (await comm.connect())[0]
        await comm.send_json_to({"action": "subscribe", "chain": chain.pk})
        assert await comm.receive_json_from() == {"type": "subscribed", "chain": chain.pk}

    def send_all() -> None:
        for seq in range(20):
            event = events.ChainStatusChanged(
                chain_id=chain.pk,
                attempt_id=None,
                status="waiting",
                worker_status="",
                restart_count=seq,
                owner_id=user.pk,
            )
            send_event_on_commit([user_group(user.pk), chain_group(chain.pk)], event)

    await database_sync_to_async(send_all)()
    received = await asyncio.gather(*(receive_until(comm, lambda m: len(m) >= 20, timeout=10) for comm in sockets))
    for messages in received:
        assert [(m["type"], m["restart_count"]) for m in messages] == [("chain.status", seq) for seq in range(20)]
    for comm in sockets:
        assert await comm.receive_nothing(0.05)
        await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_another_users_chain_cannot_be_subscribed_and_sends_nothing(
    ws_app, cluster, submit, user, other_user, token_for
):
    chain = await database_sync_to_async(submit)(user)
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(other_user))
    assert (await comm.connect())[0]
    for chain_id in (chain.pk, chain.pk + 1000):
        await comm.send_json_to({"action": "subscribe", "chain": chain_id})
        reply = await comm.receive_json_from()
        assert (reply["type"], reply["code"], reply["chain"]) == ("error", "not_found", chain_id)
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    reply = await comm.receive_json_from()
    assert (reply["type"], reply["code"], reply["stream"]) == ("error", "not_found", "s")
    await database_sync_to_async(run)(chain)
    assert await comm.receive_nothing(0.3)
    await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_team_members_may_subscribe_to_shared_chains(ws_app, cluster, submit, user, other_user, token_for):
    from django.contrib.auth.models import Group

    def share() -> None:
        team = Group.objects.create(name="vision")
        for member in (user, other_user):
            member.team = team
            member.save(update_fields=["team"])

    await database_sync_to_async(share)()
    shared = await database_sync_to_async(submit)(user, shared_with_team=True)
    private = await database_sync_to_async(submit)(user)
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(other_user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "subscribe", "chain": shared.pk})
    assert await comm.receive_json_from() == {"type": "subscribed", "chain": shared.pk}
    await comm.send_json_to({"action": "subscribe", "chain": private.pk})
    assert (await comm.receive_json_from())["code"] == "not_found"
    await database_sync_to_async(run)(private)
    await database_sync_to_async(run)(shared)
    received = await receive_until(comm, lambda m: len(m) >= 2)
    assert {m["chain_id"] for m in received} == {shared.pk}
    assert await comm.receive_nothing()
    await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_team_members_hear_of_shared_chains_without_subscribing(
    ws_app, cluster, submit, user, other_user, token_for
):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    def make_team() -> Any:
        team = Group.objects.create(name="vision")
        for member in (user, other_user):
            member.team = team
            member.save(update_fields=["team"])
        return UserFactory(username="carol")  # not in the team

    outsider = await database_sync_to_async(make_team)()
    shared = await database_sync_to_async(submit)(user, shared_with_team=True)
    private = await database_sync_to_async(submit)(user, name="private")
    mate = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(other_user))
    owner = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    stranger = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(outsider))
    for comm in (mate, owner, stranger):
        assert (await comm.connect())[0]

    with capture_events() as sent:
        await database_sync_to_async(run)(private)
        await database_sync_to_async(run)(shared)
    team = f"team.{user.team_id}"
    assert {s.body["chain_id"] for s in sent.to_group(team)} == {shared.pk}
    assert sent.to_group(team) == [s for s in sent if s.body["chain_id"] == shared.pk]

    received = await receive_until(mate, lambda m: len(m) >= 2)
    assert [(m["type"], m["chain_id"]) for m in received] == [
        ("attempt.started", shared.pk),
        ("chain.status", shared.pk),
    ]
    assert await mate.receive_nothing()
    # The owner is in the team too: each event reaches them once.
    received = await receive_until(owner, lambda m: len(m) >= 4)
    assert sorted((m["chain_id"], m["type"]) for m in received) == sorted(
        (chain.pk, kind) for chain in (shared, private) for kind in ("attempt.started", "chain.status")
    )
    assert await owner.receive_nothing()
    assert await stranger.receive_nothing()
    for comm in (mate, owner, stranger):
        await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_node_events_reach_admins_not_users(ws_app, cluster, user, admin_user, token_for):
    admin = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(admin_user))
    plain = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await admin.connect())[0] and (await plain.connect())[0]
    await database_sync_to_async(cluster_services.node_disable)(actor=admin_user, node=cluster.nodes[0], reason="x")
    message = await admin.receive_json_from()
    assert (message["type"], message["name"], message["state"]) == ("node.state", "n0", "disabled")
    assert await plain.receive_nothing()
    assert await admin.receive_nothing()
    await admin.disconnect()
    await plain.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_bad_messages_get_a_clear_error(ws_app, user, token_for):
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    for bad in (
        "not json",
        "[1]",
        '{"action": "dance"}',
        '{"action": "subscribe", "chain": "x"}',
        '{"action": "subscribe", "chain": 123456789012345678901234567890}',
    ):
        await comm.send_to(text_data=bad)
        reply = await comm.receive_json_from()
        assert (reply["type"], reply["code"]) == ("error", "bad_request"), bad
    await comm.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_notification_event_reaches_its_user(ws_app, user, token_for):
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    event = NotificationCreated(
        notification_id=7, user_id=user.pk, kind="reply", title="Re: NaN", url="/f/1", unread_count=3
    )
    await database_sync_to_async(send_event_on_commit)([user_group(user.pk)], event)
    assert await comm.receive_json_from() == {
        "type": "notification.created",
        "notification_id": 7,
        "user_id": user.pk,
        "kind": "reply",
        "title": "Re: NaN",
        "url": "/f/1",
        "unread_count": 3,
    }
    await comm.disconnect()


# --- the outbox ---------------------------------------------------------------------------------


class GatedLayer:
    """A channel layer that holds every send until the test opens the gate, and records them."""

    def __init__(self, fail_group: str | None = None) -> None:
        import threading

        self.gate = threading.Event()
        self.sent: list[tuple[str, int]] = []
        self.fail_group = fail_group

    async def group_send(self, group: str, message: dict) -> None:
        import asyncio

        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        if group == self.fail_group:
            raise ConnectionError("redis went away")
        self.sent.append((group, message["event"]["user_id"]))


@pytest.mark.django_db(transaction=True)
def test_committing_code_does_not_wait_for_the_layer_and_order_is_kept(monkeypatch):
    from portal import realtime

    layer = GatedLayer(fail_group="user.3")
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: layer)
    for user_id in range(1, 6):  # outside a transaction: sent at once, i.e. handed to the outbox
        send_event_on_commit([user_group(user_id), ADMINS_GROUP], events.QuotaUsageChanged(user_id=user_id))
    assert layer.sent == []  # the layer has not taken one yet, and nobody waited for it
    assert not realtime.outbox.flush(0.05)
    layer.gate.set()
    assert realtime.outbox.flush(10.0)
    # In commit order; a failing group is logged and skipped, the rest still go out.
    assert layer.sent == [
        (group, user_id)
        for user_id in range(1, 6)
        for group in (user_group(user_id), ADMINS_GROUP)
        if group != "user.3"
    ]
