"""The Nodes page and drain semantics with the scheduler and the launcher: a draining node takes
no new work, its jobs run on until the admin's deadline, then they are suspended with the usual
notice and requeued elsewhere (not held); enabling it puts it back into scheduling."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from apps.cluster import services as cluster_services
from apps.cluster.choices import NodeState
from apps.cluster.models import Node
from apps.core.models import AuditEntry
from apps.experiments import lifecycle
from apps.experiments.choices import ChainStatus, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Chain, Rank
from apps.launcher.backends.base import RankObservation, RankPhase
from apps.launcher.reconcile import Reconciler
from tests.factories import UserFactory
from tests.permissions import db_state


class FakeBackend:
    """Ranks run until signalled; a signalled attempt's processes are gone at the next look."""

    def __init__(self) -> None:
        self.signalled: list[int] = []

    def observe(self, attempt_id: int) -> dict[int, RankObservation]:
        if attempt_id in self.signalled:
            return {}
        ranks = Rank.objects.filter(attempt_id=attempt_id).values_list("rank", "node__name")
        return {r: RankObservation(rank=r, phase=RankPhase.RUNNING, node=n) for r, n in ranks}

    def signal_suspend(self, attempt_id: int) -> None:
        self.signalled.append(attempt_id)

    def stop(self, attempt_id: int, *, reason: str = "stop") -> None:
        self.signalled.append(attempt_id)

    def start(self, spec: object) -> None:
        pass

    def known_attempts(self) -> set[int]:
        return set()

    def release(self, attempt_id: int) -> None:
        pass

    def nodes(self) -> None:
        return None

    def last_output_at(self, attempt_id: int) -> float:
        # Output "just now" even at the pass's future clock: the watchdog never fires here.
        return (timezone.now() + timedelta(days=2)).timestamp()


def node_of(chain: Chain) -> Node:
    return Rank.objects.get(attempt_id=Chain.objects.get(pk=chain.pk).latest_attempt_id, holds_node=True).node


def running(chain: Chain) -> Chain:
    chain = Chain.objects.get(pk=chain.pk)
    lifecycle.attempt_mark_running(attempt_id=chain.latest_attempt_id)
    return Chain.objects.get(pk=chain.pk)


def test_drain_takes_no_new_work_and_suspends_at_the_deadline(cluster, submit, admins, task_log):
    person = UserFactory(username="drainee")
    job = running(submit(person, name="long"))
    node = node_of(job)
    before = AuditEntry.objects.count()
    response = admins["cluster_manager"].post(
        f"/monitor/nodes/{node.pk}/action/", {"action": "drain", "reason": "disk swap", "deadline": "60"}
    )
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.state == NodeState.DRAINING and node.state_reason == "disk swap"
    assert timedelta(minutes=59) < node.drain_deadline - timezone.now() <= timedelta(minutes=60)
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert entry.action == "node.drain" and entry.before == {
        "state": "ready",
        "state_reason": "",
        "drain_deadline": None,
    }
    assert entry.after["state"] == "draining" and entry.after["drain_deadline"] == node.drain_deadline.isoformat()

    # no new work: three more jobs fill the three other nodes; a fourth waits, the drained node idle
    others = [submit(person, name=f"new{i}") for i in range(3)]
    assert {Chain.objects.get(pk=c.pk).status for c in others} == {ChainStatus.STARTING}
    late = submit(UserFactory(username="late"), name="late")
    assert Chain.objects.get(pk=late.pk).status == ChainStatus.WAITING
    assert not Rank.objects.filter(node=node, holds_node=True).exclude(attempt__chain=job).exists()

    # before the deadline the job runs on
    backend = FakeBackend()
    Reconciler(backend).run()
    assert Attempt.objects.get(pk=job.latest_attempt_id).worker_status == WorkerStatus.RUNNING

    # at the deadline it is suspended (notice + grace), then requeued, not held
    Reconciler(backend, now=node.drain_deadline + timedelta(seconds=1)).run()
    first = Attempt.objects.get(pk=job.latest_attempt_id)
    assert first.worker_status == WorkerStatus.SUSPENDING and first.suspend_reason == SuspendReason.NODE_DRAINED
    assert backend.signalled == [first.pk]
    Reconciler(backend, now=node.drain_deadline + timedelta(seconds=2)).run()
    first.refresh_from_db()
    assert first.worker_status == WorkerStatus.SUSPENDED
    chain = Chain.objects.get(pk=job.pk)
    assert chain.held is False and chain.latest_attempt_id != first.pk
    assert not Rank.objects.filter(node=node, holds_node=True).exists()  # drained: nothing new on it
    node.refresh_from_db()
    assert node.state == NodeState.DRAINING

    # enabling puts it back: the waiting work starts on it
    admins["ops"].post(f"/monitor/nodes/{node.pk}/action/", {"action": "enable"})
    node.refresh_from_db()
    assert node.state == NodeState.READY and node.drain_deadline is None
    assert Rank.objects.filter(node=node, holds_node=True).exists()
    assert [e.action for e in AuditEntry.objects.order_by("id")[before:]] == ["node.drain", "node.enable"]


def test_drain_now_and_the_backend_does_not_undo_it(cluster, submit, admins):
    node = cluster.nodes[0]
    admins["root"].post(f"/monitor/nodes/{node.pk}/action/", {"action": "drain", "reason": "now", "deadline": "0"})
    node.refresh_from_db()
    assert node.state == NodeState.DRAINING and node.drain_deadline <= timezone.now()
    assert cluster_services.node_observe_readiness(name=node.name, ready=True) is False
    node.refresh_from_db()
    assert node.state == NodeState.DRAINING


def test_bad_drain_requests_change_nothing(cluster, admins):
    node = cluster.nodes[0]
    before = db_state()
    url = f"/monitor/nodes/{node.pk}/action/"
    response = admins["ops"].post(url, {"action": "drain", "reason": "", "deadline": "60"}, follow=True)
    assert "Say why (it is shown to users)." in response.content.decode()
    past = (timezone.localtime() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = admins["ops"].post(
        url, {"action": "drain", "reason": "x", "deadline": "at", "deadline_at": past}, follow=True
    )
    assert "The deadline is in the past" in response.content.decode()
    response = admins["ops"].post(url, {"action": "drain", "reason": "x", "deadline": "at"}, follow=True)
    assert "Pick the date and time." in response.content.decode()
    assert db_state() == before


def test_tree_shows_counts_states_and_who_runs_what(cluster, submit, admins, django_assert_num_queries):
    person = UserFactory(username="treeuser")
    job = submit(person, name="on-a-node")
    busy = node_of(job)
    cluster_services.node_disable(actor=admins["users"]["root"], node=cluster.nodes[3], reason="bad gpu")
    with django_assert_num_queries(7):  # session, user, groups; groups, nodes, holders; unread
        response = admins["quota_editor"].get("/monitor/nodes/")
    body = response.content.decode()
    assert response.status_code == 200
    row = re.search(rf'<tr data-node="{busy.name}">(.*?)</tr>', body, re.S).group(1)
    assert 'data-node-state="busy"' in row and "on-a-node" in row and "treeuser" in row
    assert 'data-count="busy">Busy 1<' in body and 'data-count="free">Free 2<' in body
    assert 'data-count="disabled">Disabled 1<' in body
    assert "node-actions" not in body  # a quota editor sees, does not act
    only_free = admins["ops"].get("/monitor/nodes/?state=free").content.decode()
    assert f'data-node="{busy.name}"' not in only_free and only_free.count("<tr data-node=") == 2

    detail = admins["ops"].get(f"/monitor/nodes/{busy.pk}/").content.decode()
    assert "on-a-node" in detail and "node-actions" in detail
    disabled = admins["ops"].get(f"/monitor/nodes/{cluster.nodes[3].pk}/").content.decode()
    assert 'data-event="node.disable"' in disabled and "bad gpu" in disabled
