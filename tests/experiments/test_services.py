"""Experiment services: submit validation, stop, suspend, resume, tags, priority; transitions."""

from __future__ import annotations

import pytest

from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied, RateLimited
from apps.experiments import lifecycle, services
from apps.experiments.choices import ChainStatus, QueueStatus, RankStatus, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Chain, Rank
from tests.factories import UserFactory


def latest(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def run(chain: Chain) -> Attempt:
    """Play the launcher: every rank running."""
    attempt = latest(chain)
    assert attempt.worker_status == WorkerStatus.STARTING, attempt.worker_status
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    assert lifecycle.attempt_mark_running(attempt_id=attempt.pk)
    return latest(chain)


@pytest.mark.django_db
def test_submit_creates_chain_and_first_attempt_and_schedules(cluster, submit, user, task_log):
    asked_before = len(task_log.calls)
    chain = submit(user, nodes=2, tags=["b", "a", "a"])
    attempt = latest(chain)
    assert (attempt.index, attempt.priority) == (0, 10)
    # The scheduling pass ran on commit and placed it.
    assert attempt.worker_status == WorkerStatus.STARTING
    assert attempt.queue_status == QueueStatus.SCHEDULED
    assert sorted(Rank.objects.filter(attempt=attempt).values_list("rank", flat=True)) == [0, 1]
    assert chain.tag_names == ["a", "b"]
    assert chain.status == ChainStatus.STARTING
    # One pass on commit, whose start asked the launcher once.
    assert task_log.calls[asked_before:] == ["apps.scheduler.tasks.schedule_pass", "apps.launcher.tasks.reconcile_pass"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"name": ""}, "name", "name"),
        ({"name": "bad(name)"}, "name", "parentheses"),
        ({"group": "ghost"}, "group", "Unknown node group 'ghost' (known: training)"),
        ({"nodes": 0}, "nodes", "at least one node"),
        ({"nodes": 5}, "nodes", "Group training has 4 usable node(s); this job asks for 5"),
        ({"priority": "URGENT"}, "priority", "Unknown priority"),
        ({"environment": "cuda99"}, "environment", "Unknown environment"),
        ({"workspace": "relative"}, "workspace", "absolute"),
        ({"workspace": "/no/such/dir"}, "workspace", "No such directory"),
        ({"entrypoint": "missing.py"}, "entrypoint", "No such file"),
        ({"env_vars": {"RANK": "3"}}, "env_vars", "set by the platform"),
        ({"env_vars": {"1BAD": "x"}}, "env_vars", "not a valid variable name"),
        ({"tags": ["has space"]}, "tags", "Tag"),
        ({"kind": "ruby"}, "kind", "python, bash or executable"),
        ({"watchdog_seconds": 5}, "watchdog_seconds", "between 60 seconds and 30 days"),
        ({"run_estimate_seconds": 0}, "run_estimate_seconds", "expected run time must be between 60 seconds"),
        ({"run_estimate_seconds": -60}, "run_estimate_seconds", "expected run time must be between 60 seconds"),
        ({"run_estimate_seconds": 30 * 86400 + 1}, "run_estimate_seconds", "between 60 seconds and 30 days"),
        ({"run_estimate_seconds": "6h"}, "run_estimate_seconds", "between 60 seconds and 30 days"),
        ({"run_estimate_seconds": True}, "run_estimate_seconds", "between 60 seconds and 30 days"),
    ],
)
def test_submit_rejects_bad_input_with_a_clear_message(cluster, submit, user, kwargs, field, needle, settings):
    settings.ROTA_BACKEND = "local"  # paths are checked when jobs run on this machine
    with pytest.raises(ApplicationError) as info:
        submit(user, **kwargs)
    assert field in info.value.fields
    assert needle in info.value.message
    assert not Chain.objects.exists()


@pytest.mark.django_db
def test_external_users_are_limited_to_low_priorities(cluster, submit):
    ext = UserFactory(username="ext", role="external")
    with pytest.raises(ApplicationError, match="External users"):
        submit(ext, priority="HIGH")
    assert submit(ext, priority="AUTO").priority == -1


@pytest.mark.django_db
def test_environment_permission_is_enforced(cluster, submit, user):
    from apps.cluster.services import environment_upsert

    environment_upsert(actor=None, name="private", image="x")
    with pytest.raises(ApplicationError, match="may not use the environment 'private'"):
        submit(user, environment="private")


@pytest.mark.django_db
def test_unique_name_among_unfinished_chains(cluster, submit, user, other_user):
    chain = submit(user, name="exp")
    with pytest.raises(Conflict, match="already have an unfinished job named 'exp'"):
        submit(user, name="exp")
    submit(other_user, name="exp")  # another user's namespace
    services.experiment_stop(actor=user, chain=chain)
    lifecycle.attempt_mark_finished(attempt_id=latest(chain).pk, status=WorkerStatus.STOPPED)
    assert submit(user, name="exp").name == "exp"  # the first one finished


@pytest.mark.django_db
def test_cap_on_unfinished_chains(cluster, submit, user, settings):
    settings.ROTA_MAX_UNFINISHED_CHAINS_PER_USER = 2
    submit(user)
    submit(user)
    with pytest.raises(ApplicationError, match="2 unfinished jobs"):
        submit(user)
    assert Chain.objects.count() == 2


@pytest.mark.django_db
def test_submit_refuses_a_job_above_its_quota_ceiling_in_the_schedulers_words(cluster, submit, user):
    cluster.set_quota(user, 10, 2)  # NORMAL: 2 nodes; the other levels keep the public 4
    cluster.set_quota(user, 50, 0)
    with pytest.raises(ApplicationError) as info:
        submit(user, nodes=3, priority="NORMAL")
    message = (
        "Needs 3 nodes but alice's quota in 'training' at NORMAL is 2 nodes, so it can never start at this"
        " level. Levels with enough quota: VERY_HIGH (4), HIGH (4), ABOVE_NORMAL (4), LOW (4)."
    )
    assert (info.value.code, info.value.message, info.value.fields) == ("infeasible", message, {"priority": [message]})
    with pytest.raises(ApplicationError, match="at EXTREME_HIGH is 0 nodes, so it can never start at this level"):
        submit(user, nodes=1, priority="EXTREME_HIGH")
    assert not Chain.objects.exists()


@pytest.mark.django_db
def test_submit_refuses_auto_when_no_level_has_room_for_the_job(cluster, submit, user):
    for level in (0, 5, 8, 10, 20, 30, 40, 50):
        cluster.set_quota(user, level, 1)
    with pytest.raises(ApplicationError) as info:
        submit(user, nodes=2, priority="AUTO")
    assert info.value.message == "Needs 2 nodes but alice's largest quota in 'training' at any priority is 1 node."
    assert info.value.fields == {"nodes": [info.value.message]}
    assert not Chain.objects.exists()
    assert submit(user, nodes=1, priority="AUTO").node_count == 1  # what fits is accepted


@pytest.mark.django_db
def test_stop_queued_cancels_at_once(cluster, submit, user, task_log):
    with task_log.paused():  # keep it waiting
        chain = submit(user)
    assert latest(chain).worker_status == WorkerStatus.QUEUED
    chain = services.experiment_stop(actor=user, chain=chain)
    attempt = latest(chain)
    assert (attempt.worker_status, attempt.queue_status, attempt.stop_reason) == ("canceled", "finished", "user")
    assert (chain.status, chain.finished) == (ChainStatus.CANCELED, True)
    with pytest.raises(Conflict, match="already finished"):
        services.experiment_stop(actor=user, chain=chain)


@pytest.mark.django_db
def test_stop_running_hands_to_launcher_then_finishes(cluster, submit, user, task_log):
    chain = submit(user, nodes=2)
    run(chain)
    chain = services.experiment_stop(actor=user, chain=chain)
    attempt = latest(chain)
    assert (attempt.worker_status, chain.status) == (WorkerStatus.STOPPING, ChainStatus.STOPPING)
    assert Rank.objects.filter(attempt=attempt, holds_node=True).count() == 2  # until the launcher confirms
    assert lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.STOPPED)
    assert Rank.objects.filter(attempt=attempt, holds_node=True).count() == 0
    chain.refresh_from_db()
    assert (chain.status, chain.finished) == (ChainStatus.STOPPED, True)


@pytest.mark.django_db
def test_suspend_running_then_resume_carries_whole_life_state(cluster, submit, user):
    chain = submit(user)
    attempt = run(chain)
    services.experiment_suspend(actor=user, chain=chain)
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDING, SuspendReason.USER)
    assert lifecycle.attempt_set_whole_life_state(attempt_id=attempt.pk, value=7)
    nxt = lifecycle.attempt_mark_suspended(attempt_id=attempt.pk)
    chain.refresh_from_db()
    assert (nxt.index, nxt.whole_life_state, nxt.worker_status) == (1, 7, WorkerStatus.QUEUED)
    assert (chain.status, chain.held, chain.restart_count, chain.finished) == (ChainStatus.HELD, True, 1, False)
    # Held: the scheduler leaves it alone even though nodes are free.
    assert latest(chain).worker_status == WorkerStatus.QUEUED
    services.experiment_resume(actor=user, chain=chain)
    attempt2 = latest(chain)
    assert attempt2.worker_status == WorkerStatus.STARTING
    assert attempt2.whole_life_state == 7
    # The first attempt is finished and never changes again.
    attempt.refresh_from_db()
    assert attempt.queue_status == QueueStatus.FINISHED
    assert not lifecycle.transition(attempt_id=attempt.pk, target=WorkerStatus.RUNNING)
    assert not lifecycle.attempt_set_whole_life_state(attempt_id=attempt.pk, value=99)


@pytest.mark.django_db
def test_resume_a_stopped_chain_gets_a_new_attempt(cluster, submit, user):
    chain = submit(user)
    attempt = run(chain)
    lifecycle.attempt_set_whole_life_state(attempt_id=attempt.pk, value=3)
    services.experiment_stop(actor=user, chain=chain)
    lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.STOPPED)
    chain = services.experiment_resume(actor=user, chain=chain)
    nxt = latest(chain)
    assert (nxt.index, nxt.whole_life_state) == (1, 3)
    assert chain.finished is False


@pytest.mark.django_db
def test_resume_refuses_what_cannot_be_resumed(cluster, submit, user):
    chain = submit(user)
    run(chain)
    with pytest.raises(Conflict, match="only a suspended or stopped job"):
        services.experiment_resume(actor=user, chain=chain)
    lifecycle.attempt_mark_finished(attempt_id=latest(chain).pk, status=WorkerStatus.SUCCEEDED)
    with pytest.raises(Conflict, match="succeeded"):
        services.experiment_resume(actor=user, chain=chain)


@pytest.mark.django_db
def test_running_never_goes_back_to_queued(cluster, submit, user):
    chain = submit(user)
    attempt = run(chain)
    assert not lifecycle.transition(attempt_id=attempt.pk, target=WorkerStatus.QUEUED)
    assert not lifecycle.attempt_start(attempt_id=attempt.pk, priority=10, quota_priority=10, node_ids=[])
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING


@pytest.mark.django_db
def test_other_users_cannot_act_and_nothing_changes(cluster, submit, user, other_user):
    chain = submit(user)
    for action in (services.experiment_stop, services.experiment_suspend, services.experiment_resume):
        with pytest.raises(NotFound):
            action(actor=other_user, chain=chain)
    with pytest.raises(NotFound):
        services.experiment_tag(user=other_user, chain=chain, tag="x")
    assert latest(chain).worker_status == WorkerStatus.STARTING
    assert chain.tag_names == []


@pytest.mark.django_db
def test_team_members_see_shared_chains_but_cannot_act(cluster, submit):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="vision")
    owner = UserFactory(username="own", team=team)
    mate = UserFactory(username="mate", team=team)
    chain = submit(owner)
    services.experiment_share(user=owner, chain=chain)
    with pytest.raises(PermissionDenied):
        services.experiment_stop(actor=mate, chain=chain)


@pytest.mark.django_db
def test_admin_can_stop_anyones_job(cluster, submit, user):
    ops = UserFactory(username="ops1", groups=["ops"])
    chain = submit(user)
    services.experiment_stop(actor=ops, chain=chain)
    assert latest(chain).stop_reason == "admin"


@pytest.mark.django_db
def test_priority_update_is_rate_limited(cluster, submit, user, task_log):
    with task_log.paused():
        chain = submit(user)
    services.experiment_set_priority(user=user, chain=chain, priority="HIGH")
    assert latest(chain).priority == 30
    with pytest.raises(RateLimited, match="once every 10 seconds"):
        services.experiment_set_priority(user=user, chain=chain, custom_rank=1.0)
    chain.refresh_from_db()
    assert chain.custom_rank is None


@pytest.mark.django_db
def test_tags_and_star(cluster, submit, user):
    chain = submit(user)
    assert services.experiment_tag(user=user, chain=chain, tag="baseline") == ["baseline"]
    assert services.experiment_untag(user=user, chain=chain, tag="baseline") == []
    services.experiment_star(user=user, chain=chain)
    chain.refresh_from_db()
    assert chain.starred


@pytest.mark.django_db
def test_go_suspend_outside_a_suspend_requeues_without_hold(cluster, submit, user):
    chain = submit(user)
    attempt = run(chain)
    assert lifecycle.attempt_go_suspend(attempt_id=attempt.pk)
    lifecycle.attempt_mark_suspended(attempt_id=attempt.pk)
    chain.refresh_from_db()
    assert chain.held is False
    assert latest(chain).worker_status == WorkerStatus.STARTING  # requeued and placed again


@pytest.mark.django_db
def test_held_chain_explains_itself(cluster, submit, user, task_log):
    with task_log.paused():
        chain = submit(user)
    cluster.set_quota(user, 10, 0)
    services.experiment_suspend(actor=user, chain=chain)
    attempt = latest(chain)
    assert (attempt.pending_code, attempt.queue_position) == ("held", None)
    assert "resumed" in attempt.pending_message
    services.experiment_resume(actor=user, chain=chain)
    assert latest(chain).pending_code == "quota_ceiling"  # no NORMAL quota at all: it can never run


@pytest.mark.django_db
def test_go_suspend_waits_for_every_running_rank(cluster, submit, user):
    from apps.experiments.choices import SuspendState

    chain = submit(user, nodes=2)
    attempt = run(chain)
    services.experiment_suspend(actor=user, chain=chain)
    assert lifecycle.attempt_go_suspend(attempt_id=attempt.pk, rank=1)
    attempt.refresh_from_db()
    assert attempt.suspend_state == SuspendState.ACKNOWLEDGED  # rank 0 may still be saving
    assert lifecycle.attempt_go_suspend(attempt_id=attempt.pk, rank=0)
    attempt.refresh_from_db()
    assert attempt.suspend_state == SuspendState.READY


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("user", WorkerStatus.STOPPED),
        ("admin", WorkerStatus.STOPPED),
        ("hung", WorkerStatus.FAILED),
        ("marked_failed", WorkerStatus.FAILED),
        ("marked_succeeded", WorkerStatus.SUCCEEDED),
    ],
)
def test_a_finished_stop_ends_as_its_reason_says(reason, outcome):
    from apps.experiments.choices import stopped_outcome

    assert stopped_outcome(reason) == outcome


@pytest.mark.django_db
def test_stop_marked_succeeded_keeps_the_outcome_until_the_launcher_ends_it(cluster, submit, user):
    chain = submit(user)
    attempt = run(chain)
    services.experiment_stop(actor=user, chain=chain)
    services.experiment_stop(actor=user, chain=chain, outcome=WorkerStatus.SUCCEEDED)  # changes its mind
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.stop_reason) == (WorkerStatus.STOPPING, "marked_succeeded")
    with pytest.raises(ApplicationError, match="stopped, succeeded or failed"):
        services.experiment_stop(actor=user, chain=chain, outcome="paused")
    attempt.refresh_from_db()
    assert attempt.stop_reason == "marked_succeeded"
