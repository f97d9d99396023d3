"""Portal pages: sign in and out, the dashboard, the list with its filters and batch actions, the
job page and its actions, the submit form, tokens and settings; query-count guards."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.cluster import services as cluster_services
from apps.core.tasks import run_now
from apps.experiments import lifecycle
from apps.experiments import services as experiment_services
from apps.experiments.choices import ChainStatus, RankStatus, StopReason, WorkerStatus
from apps.experiments.models import Attempt, Chain
from apps.quotas import services as quota_services
from apps.web.cli import cli_command
from apps.web.models import Notice, UserPreference
from tests.factories import GroupFactory, UserFactory
from tests.permissions import db_state
from tests.web.conftest import HTMX

# --- sign in and out --------------------------------------------------------------------------


def test_sign_in_with_remember_me_keeps_the_session(client, user):
    response = client.post("/login/", {"username": "alice", "password": "pw-for-tests-1", "remember": "on"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session.get_expire_at_browser_close() is False


def test_sign_in_without_remember_me_ends_with_the_browser(client, user):
    client.post("/login/", {"username": "alice", "password": "pw-for-tests-1"})
    assert client.session.get_expire_at_browser_close() is True


def test_wrong_password_says_so_and_signs_nobody_in(client, user):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_sign_in_applies_the_users_language_and_theme(client, user):
    UserPreference.objects.create(user=user, language="zh-hans", theme="dark")
    response = client.post("/login/", {"username": "alice", "password": "pw-for-tests-1", "next": "/experiments/"})
    assert response["Location"] == "/experiments/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert response.cookies["rota_theme"].value == "dark"


def test_sign_in_never_puts_a_token_in_the_url(client, user):
    response = client.post("/login/", {"username": "alice", "password": "pw-for-tests-1"}, follow=True)
    for url, _status in response.redirect_chain:
        assert "token" not in url.lower()
    assert not ApiToken.objects.exists()  # the portal uses the session, not tokens


def test_sign_out_needs_post_and_ends_the_session(page):
    assert page.get("/").status_code == 200
    response = page.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert page.get("/").status_code == 302


def test_signed_in_user_visiting_sign_in_goes_to_the_dashboard(page):
    assert page.get("/login/")["Location"] == "/"


# --- dashboard ----------------------------------------------------------------------------------


def test_dashboard_shows_running_and_waiting_jobs_with_reasons(cluster, submit, user, page):
    cluster.set_quota(user, 10, 1)
    running = submit(user, name="runs-now", priority=10)
    waiting = submit(user, name="waits-for-quota", priority=10)
    waiting.refresh_from_db()
    assert waiting.status == ChainStatus.WAITING
    response = page.get("/")
    body = response.content.decode()
    assert "runs-now" in body and "waits-for-quota" in body
    assert "Waiting for your quota" in body
    assert f"#{waiting.latest_attempt.queue_position}" in body
    assert "My quota" in body and "training" in body
    assert running.pk != waiting.pk


def test_dashboard_without_jobs_says_what_to_do(cluster, page):
    body = page.get("/").content.decode()
    assert "Nothing running or waiting" in body
    assert 'href="/submit/"' in body


def test_dashboard_shows_notices_for_the_user_only(cluster, user, other_user, page):
    team = GroupFactory(name="vision")
    user.groups.add(team)
    now = timezone.now()
    Notice.objects.create(title="For everyone", severity="info")
    Notice.objects.create(title="For vision", audience="group", group=team, severity="warning")
    Notice.objects.create(title="Notice for bob only", audience="user", user=other_user)
    Notice.objects.create(
        title="Notice expired already", expires_at=now - timedelta(minutes=1), starts_at=now - timedelta(hours=1)
    )
    Notice.objects.create(title="Notice starting later", starts_at=now + timedelta(hours=1))
    Notice.objects.create(title="Urgent", severity="danger")
    body = page.get("/").content.decode()
    assert "For everyone" in body and "For vision" in body and "Urgent" in body
    assert "Notice for bob" not in body and "Notice expired" not in body and "Notice starting" not in body
    assert body.index("Urgent") < body.index("For vision") < body.index("For everyone")


def test_notice_bodies_are_escaped(cluster, page):
    Notice.objects.create(title="<b>bold</b>", body="<script>alert(1)</script>")
    body = page.get("/").content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


def test_dashboard_live_partial_for_htmx(cluster, submit, user, page):
    submit(user, name="live-one")
    response = page.get("/", **HTMX)
    body = response.content.decode()
    assert 'id="dash-live"' in body and "live-one" in body and "<html" not in body


def test_dashboard_uses_constant_queries(cluster, submit, user, page):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert page.get("/").status_code == 200
        return len(ctx.captured_queries)

    submit(user, name="d1", tags=["a"])
    count()
    few = count()
    for i in range(5):
        submit(user, name=f"d-more-{i}", tags=["a", f"t{i}"], priority=0)
    assert count() == few


# --- experiments list ---------------------------------------------------------------------------


def names(response) -> list[str]:
    import re

    return re.findall(r'class="name" href="/experiments/\d+/">([^<]+)</a>', response.content.decode())


def finish(chain: Chain, status: str = WorkerStatus.STOPPED) -> None:
    chain.refresh_from_db()
    lifecycle.attempt_mark_finished(attempt_id=chain.latest_attempt_id, status=status)


def test_list_filters_are_kept_in_the_url(cluster, submit, user, page):
    alpha = submit(user, name="alpha", tags=["vision"])
    beta = submit(user, name="beta", tags=["nlp", "big"])
    experiment_services.experiment_star(user=user, chain=beta)
    experiment_services.experiment_stop(actor=user, chain=beta)
    finish(beta)
    assert names(page.get("/experiments/")) == ["beta", "alpha"]
    assert names(page.get("/experiments/?status=finished")) == ["beta"]
    assert names(page.get("/experiments/?status=stopped")) == ["beta"]
    assert names(page.get("/experiments/?status=failed")) == []
    assert names(page.get("/experiments/?status=active")) == ["alpha"]
    assert names(page.get("/experiments/?tag=nlp,big")) == ["beta"]
    assert names(page.get("/experiments/?starred=true")) == ["beta"]
    assert names(page.get("/experiments/?name=alp")) == ["alpha"]
    assert names(page.get("/experiments/?group=training&priority=NORMAL")) == ["beta", "alpha"]
    assert names(page.get("/experiments/?priority=HIGH")) == []
    assert names(page.get("/experiments/?ordering=name")) == ["alpha", "beta"]
    today = timezone.now().date().isoformat()
    assert names(page.get(f"/experiments/?created_after={today}&created_until={today}")) == ["beta", "alpha"]
    assert names(page.get("/experiments/?created_until=2000-01-01")) == []
    assert alpha.pk


def test_list_filter_with_nothing_found_offers_to_clear(cluster, submit, user, page):
    submit(user, name="alpha")
    body = page.get("/experiments/?name=zzz").content.decode()
    assert "No job matches these filters" in body and "Clear filters" in body


def test_list_without_jobs_offers_to_submit(cluster, page):
    body = page.get("/experiments/").content.decode()
    assert "No experiments yet" in body and "Submit your first job" in body


def test_list_paginates(cluster, submit, user, page, task_log):
    with task_log.paused():
        for i in range(27):
            submit(user, name=f"job-{i:02d}", priority=10)
    cluster.set_quota(user, 10, 0)
    first = page.get("/experiments/")
    assert len(names(first)) == 25 and "Page 1 of 2" in first.content.decode()
    second = page.get("/experiments/?page=2")
    assert names(second) == ["job-01", "job-00"]
    assert len(names(page.get("/experiments/?per_page=50"))) == 27


def test_list_results_partial_for_htmx(cluster, submit, user, page):
    submit(user, name="alpha")
    response = page.get("/experiments/?name=alp", HTTP_HX_TARGET="chain-results", **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="chain-results"') and "alpha" in body


def test_list_uses_constant_queries(cluster, submit, user, page, task_log):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert page.get("/experiments/").status_code == 200
        return len(ctx.captured_queries)

    # Jobs submitted before the scheduler looks, then their quota taken away: they wait, explained.
    with task_log.paused():
        submit(user, name="first", tags=["a"], priority=10)
    cluster.set_quota(user, 10, 0)
    count()
    few = count()
    with task_log.paused():
        cluster.set_quota(user, 10, 4)
        for i in range(8):
            chain = submit(user, name=f"more-{i}", tags=["a", f"t{i}"], priority=10)
            if i % 2:
                experiment_services.experiment_stop(actor=user, chain=chain)
                experiment_services.experiment_resume(actor=user, chain=chain)  # a second attempt
    cluster.set_quota(user, 10, 0)
    assert count() == few


def test_batch_actions_report_what_happened_to_each(cluster, submit, user, page):
    one = submit(user, name="one")
    two = submit(user, name="two")
    done = submit(user, name="done")
    experiment_services.experiment_stop(actor=user, chain=done)
    finish(done)
    response = page.post(
        "/experiments/batch/",
        {"action": "stop", "ids": [one.pk, two.pk, done.pk], "next": "/experiments/"},
        follow=True,
    )
    body = response.content.decode()
    assert "Stopping 2 jobs." in body
    assert f"done (#{done.pk}): This job has already finished" in body
    for chain in (one, two):
        chain.refresh_from_db()
        assert chain.status == ChainStatus.STOPPING


def test_batch_tag_and_untag(cluster, submit, user, page):
    one, two = submit(user, name="one"), submit(user, name="two")
    page.post("/experiments/batch/", {"action": "tag", "tag": "sweep", "ids": [one.pk, two.pk]})
    assert sorted(Chain.objects.filter(tags__name="sweep").values_list("name", flat=True)) == ["one", "two"]
    page.post("/experiments/batch/", {"action": "untag", "tag": "sweep", "ids": [one.pk]})
    assert list(Chain.objects.filter(tags__name="sweep").values_list("name", flat=True)) == ["two"]


def test_batch_needs_a_selection_and_a_tag(cluster, submit, user, page):
    chain = submit(user, name="one")
    body = page.post("/experiments/batch/", {"action": "stop"}, follow=True).content.decode()
    assert "Select at least one job." in body
    body = page.post("/experiments/batch/", {"action": "tag", "ids": [chain.pk]}, follow=True).content.decode()
    assert "Give the tag." in body
    assert not chain.tags.exists()


def test_batch_over_htmx_asks_the_list_to_refresh(cluster, submit, user, page):
    chain = submit(user, name="one")
    response = page.post("/experiments/batch/", {"action": "suspend", "ids": [chain.pk]}, **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == '{"rota:list-changed": {}}'  # django-htmx's trigger_client_event
    assert "Suspending 1 job." in response.content.decode()  # an out-of-band toast


def test_star_and_tag_inline_return_the_row(cluster, submit, user, page):
    chain = submit(user, name="row-job")
    response = page.post(f"/experiments/{chain.pk}/star/", {"starred": "1", "ctx": "row"}, **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith(f'<tr id="row-{chain.pk}"') and 'aria-pressed="true"' in body
    response = page.post(f"/experiments/{chain.pk}/tags/", {"tag": "fresh", "ctx": "row"}, **HTMX)
    assert ">fresh</a>" in response.content.decode()
    response = page.post(f"/experiments/{chain.pk}/tags/", {"tag": "bad tag!", "ctx": "row"}, **HTMX)
    assert "use letters, digits" in response.content.decode()
    assert sorted(chain.tags.values_list("name", flat=True)) == ["fresh"]


# --- job page and actions -----------------------------------------------------------------------


def test_detail_explains_why_a_job_waits(cluster, submit, user, page):
    cluster.set_quota(user, 10, 1)
    holder = submit(user, name="holder", priority=10)
    waiting = submit(user, name="waiter", priority=10)
    body = page.get(f"/experiments/{waiting.pk}/").content.decode()
    waiting.refresh_from_db()
    attempt = waiting.latest_attempt
    assert "Waiting for your quota" in body
    assert f"position {attempt.queue_position} in the training queue" in body
    assert attempt.pending_message[:40].replace("'", "&#x27;") in body
    assert f'href="/experiments/{holder.pk}/"' in body  # held by my own job: linked


def test_detail_says_when_a_job_can_never_start(cluster, submit, user, page, task_log):
    with task_log.paused():  # submitted before its quota shrank (a bigger job is refused at submit)
        chain = submit(user, name="too-big", nodes=2, priority=10)
        cap_quota(cluster, user, 1)
    run_now(lifecycle.SCHEDULE)
    body = page.get(f"/experiments/{chain.pk}/").content.decode()
    assert "Cannot run: it needs more nodes than your quota allows" in body
    assert f'href="/submit/?from={chain.pk}"' in body
    assert "Move to the front of my queue" not in body


def test_detail_of_a_held_job_offers_resume(cluster, submit, user, page, task_log):
    with task_log.paused():  # keep it waiting
        chain = submit(user, name="held", priority=10)
    experiment_services.experiment_suspend(actor=user, chain=chain)
    body = page.get(f"/experiments/{chain.pk}/").content.decode()
    assert "Suspended: it waits until you resume it" in body
    assert f'action="/experiments/{chain.pk}/resume/"' in body


def test_suspend_resume_and_stop_from_the_job_page(cluster, submit, user, page):
    chain = submit(user, name="acted-on")
    response = page.post(f"/experiments/{chain.pk}/suspend/", **HTMX)
    body = response.content.decode()
    assert 'id="chain-live"' in body and "Suspending" in body
    chain.refresh_from_db()
    assert chain.status == ChainStatus.SUSPENDING
    response = page.post(f"/experiments/{chain.pk}/resume/", follow=True)
    assert "only a suspended or stopped job can be resumed" in response.content.decode()
    page.post(f"/experiments/{chain.pk}/stop/")
    chain.refresh_from_db()
    assert chain.status == ChainStatus.STOPPING


def test_actions_from_the_logs_page_come_back_to_it(cluster, submit, user, page):
    chain = submit(user, name="from-logs")
    response = page.post(f"/experiments/{chain.pk}/suspend/", {"view": "logs"})
    assert response["Location"] == f"/experiments/{chain.pk}/logs/"
    response = page.post(f"/experiments/{chain.pk}/stop/", {"view": "logs"}, **HTMX)
    body = response.content.decode()
    # The logs page's header: its forms keep sending view=logs, and the overview's parts are absent.
    assert '<input type="hidden" name="view" value="logs">' in body and "Attempts" not in body
    # The page's live region asks for the logs view of the header, too.
    page_body = page.get(f"/experiments/{chain.pk}/logs/").content.decode()
    assert f'hx-get="/experiments/{chain.pk}/?view=logs" hx-target="#chain-live"' in page_body


def test_move_to_the_front_of_my_queue(cluster, submit, user, page, task_log):
    with task_log.paused():
        first = submit(user, name="first", priority=10)
        second = submit(user, name="second", priority=10)
    body = page.post(f"/experiments/{second.pk}/front/", follow=True).content.decode()
    assert "Moved to the front of your queue" in body
    second.refresh_from_db()
    assert second.custom_rank is not None and second.custom_rank < first.created_at.timestamp()


# --- stop as succeeded or failed, move to another node group -------------------------------------


def mark_url(chain: Chain, outcome: str) -> str:
    return f"/experiments/{chain.pk}/stop/{outcome}/"


def spare_group(name: str = "spare", nodes: int = 1) -> None:
    """Another node group of ``nodes`` nodes where everyone may hold one node at NORMAL."""
    public = Group.objects.get(name="public")
    group = cluster_services.node_group_upsert(actor=None, name=name)
    for i in range(nodes):
        cluster_services.node_upsert(actor=None, name=f"{name}-{i}", group=group, gpu_count=8, room="a")
    quota_services.quota_set(actor=None, group=public, kind="node", node_group=group, priority=10, value=1)


def run(chain: Chain) -> None:
    """The started job's rank runs (as the launcher would report it)."""
    chain.refresh_from_db()
    lifecycle.rank_update(attempt_id=chain.latest_attempt_id, rank=0, status=RankStatus.RUNNING)
    assert lifecycle.attempt_mark_running(attempt_id=chain.latest_attempt_id)
    chain.refresh_from_db()
    assert chain.status == ChainStatus.RUNNING


def test_stop_as_succeeded_over_htmx_and_as_failed_as_a_plain_form(cluster, submit, user, page):
    good, bad = submit(user, name="good"), submit(user, name="bad")
    run(good)
    body = page.get(f"/experiments/{good.pk}/").content.decode()
    for outcome in ("succeeded", "failed"):  # in the menu, each behind the confirmation dialog
        form = re.search(rf'<form method="post" action="{mark_url(good, outcome)}".*?</form>', body, re.S)
        assert form is not None and "data-confirm-danger data-confirm=" in form.group(0)
        assert f"Stop this job and record it as {outcome}?" in form.group(0)
    response = page.post(mark_url(good, "succeeded"), {"view": "overview"}, **HTMX)
    body = response.content.decode()
    assert 'id="chain-live"' in body and 'data-chain-status="stopping"' in body
    assert "it is recorded as succeeded once its processes have ended." in body  # the toast
    attempt = Attempt.objects.get(pk=good.latest_attempt_id)
    assert (attempt.worker_status, attempt.stop_reason) == (WorkerStatus.STOPPING, StopReason.MARKED_SUCCEEDED)
    response = page.post(mark_url(bad, "failed"))
    assert response.status_code == 302 and response["Location"] == f"/experiments/{bad.pk}/"
    assert "it is recorded as failed once its processes have ended." in page.get(response["Location"]).content.decode()
    attempt = Attempt.objects.get(pk=bad.latest_attempt_id)
    assert (attempt.worker_status, attempt.stop_reason) == (WorkerStatus.STOPPING, StopReason.MARKED_FAILED)


def test_stop_as_is_offered_only_to_a_job_that_has_run_and_has_not_ended(cluster, submit, user, page, task_log):
    done = submit(user, name="done")
    run(done)
    with task_log.paused():  # no pass starts the waiting one
        finish(done, WorkerStatus.SUCCEEDED)
        waiting = submit(user, name="never-ran")
        refusals = {
            waiting: "This job has not run, so it can only be stopped (canceled), not marked failed.",
            done: "This job has already finished (Succeeded).",
        }
        for chain, refusal in refusals.items():
            body = page.get(f"/experiments/{chain.pk}/").content.decode()
            assert "/stop/succeeded/" not in body and "/stop/failed/" not in body and "Stop as" not in body
            before = db_state()
            body = page.post(mark_url(chain, "failed"), **HTMX).content.decode()
            assert refusal in body
            assert db_state() == before


def test_move_a_waiting_job_to_another_node_group_over_htmx_and_as_a_plain_form(cluster, submit, user, page, task_log):
    spare_group()
    with task_log.paused():  # it stays waiting: no pass starts it in its new group
        chain = submit(user, name="mover")
        body = page.get(f"/experiments/{chain.pk}/").content.decode()
        form = re.search(rf'<form [^>]*action="/experiments/{chain.pk}/move/".*?</form>', body, re.S)
        assert form is not None
        assert re.findall(r'<option value="([^"]+)"', form.group(0)) == ["spare"]  # not where it is already
        response = page.post(f"/experiments/{chain.pk}/move/", {"group": "spare"}, **HTMX)
        body = response.content.decode()
        assert 'id="chain-live"' in body and "Moved to spare: the job waits in that group&#x27;s queue now." in body
        assert "spare · 1 node" in body  # the header says where it is now
        chain.refresh_from_db()
        assert (chain.node_group.name, chain.status) == ("spare", ChainStatus.WAITING)
        assert task_log.count("apps.scheduler.tasks.schedule_pass") >= 1
        response = page.post(f"/experiments/{chain.pk}/move/", {"group": "training"})
        assert response.status_code == 302 and response["Location"] == f"/experiments/{chain.pk}/"
        assert "Moved to training" in page.get(response["Location"]).content.decode()
        chain.refresh_from_db()
        assert chain.node_group.name == "training"


def test_a_move_the_service_refuses_says_why_and_changes_nothing(cluster, submit, user, page, task_log):
    spare_group("spare", nodes=1)
    spare_group("wide", nodes=2)
    cluster_services.node_group_upsert(actor=None, name="elsewhere")  # no quota for anyone there
    with task_log.paused():
        big = submit(user, name="two-nodes", nodes=2)
    refusals = [
        (
            {"group": "nowhere"},
            "&#x27;nowhere&#x27; is not a node group you may use; choose one of: spare, training, wide.",
        ),
        ({"group": "elsewhere"}, "&#x27;elsewhere&#x27; is not a node group you may use"),
        ({}, "Choose one of the node groups you may use: spare, training, wide."),
        ({"group": "spare"}, "Group spare has 1 usable node(s); this job asks for 2."),
        ({"group": "wide"}, "Needs 2 nodes but alice&#x27;s quota in &#x27;wide&#x27; at NORMAL is 1 node"),
        ({"group": "training"}, "This job is already in training."),
    ]
    for data, message in refusals:
        before = db_state()
        body = page.post(f"/experiments/{big.pk}/move/", data, **HTMX).content.decode()
        assert message in body and 'class="toast toast-error"' in body, data
        assert db_state() == before
    body = page.post(f"/experiments/{big.pk}/move/", {"group": "nowhere"}, follow=True).content.decode()
    assert "&#x27;nowhere&#x27; is not a node group you may use" in body


def test_a_running_job_cannot_be_moved(cluster, submit, user, page):
    spare_group()
    chain = submit(user, name="runner")
    run(chain)
    body = page.get(f"/experiments/{chain.pk}/").content.decode()
    assert f"/experiments/{chain.pk}/move/" not in body and "Move to node group" not in body
    before = db_state()
    body = page.post(f"/experiments/{chain.pk}/move/", {"group": "spare"}, follow=True).content.decode()
    assert "Only a waiting job can move to another node group (this one is Running); suspend it first." in body
    assert db_state() == before


def test_a_team_mate_may_neither_mark_nor_move_a_shared_job(cluster, submit, user, other_user, browser_for, task_log):
    spare_group()
    team = GroupFactory(name="lab")
    for member in (user, other_user):
        member.team = team
        member.save()
    running = submit(user, name="shared-running", shared_with_team=True)
    run(running)
    with task_log.paused():
        waiting = submit(user, name="shared-waiting", shared_with_team=True)
    bob = browser_for(other_user)
    for chain in (running, waiting):
        body = bob.get(f"/experiments/{chain.pk}/").content.decode()
        assert chain.name in body and "/stop/succeeded/" not in body and "/move/" not in body
    attempts = [
        (mark_url(running, "succeeded"), {}, HTMX),
        (mark_url(running, "failed"), {}, {}),
        (f"/experiments/{waiting.pk}/move/", {"group": "spare"}, HTMX),
        (f"/experiments/{waiting.pk}/move/", {"group": "spare"}, {}),
    ]
    for url, data, headers in attempts:
        before = db_state()
        response = bob.post(url, data, follow=not headers, **headers)
        assert "Only the owner of this job or an admin may do that." in response.content.decode(), url
        assert db_state() == before


def cap_quota(cluster, user, nodes: int) -> None:
    """The user may hold at most ``nodes`` nodes at any level: bigger jobs can never start."""
    for level in (0, 5, 8, 10, 20, 30, 40, 50):
        cluster.set_quota(user, level, nodes)


def test_dashboard_calls_out_jobs_that_can_never_start(cluster, submit, user, page, task_log):
    with task_log.paused():  # submitted before its quota shrank (a bigger job is refused at submit)
        chain = submit(user, name="far-too-big", nodes=2, priority=10)
        cap_quota(cluster, user, 1)
    run_now(lifecycle.SCHEDULE)
    chain.refresh_from_db()
    assert chain.latest_attempt.infeasible
    body = page.get("/").content.decode()
    assert "1 of your jobs can never start as submitted" in body
    assert f'href="/experiments/{chain.pk}/"' in body


def test_priority_change_and_its_rate_limit(cluster, submit, user, page):
    chain = submit(user, name="prio")
    body = page.post(f"/experiments/{chain.pk}/priority/", {"priority": "30"}, follow=True).content.decode()
    assert "Priority set to HIGH." in body
    body = page.post(f"/experiments/{chain.pk}/priority/", {"priority": "0"}, follow=True).content.decode()
    assert "once every 10 seconds" in body
    chain.refresh_from_db()
    assert chain.priority == 30


def test_share_needs_a_team(cluster, submit, user, page):
    chain = submit(user, name="shy")
    body = page.post(f"/experiments/{chain.pk}/share/", {"shared": "1"}, follow=True).content.decode()
    assert "You are not in a team" in body
    chain.refresh_from_db()
    assert chain.shared_with_team is False


def test_team_member_sees_a_shared_job_but_may_not_act(cluster, submit, user, other_user, browser_for):
    team = GroupFactory(name="lab")
    for member in (user, other_user):
        member.team = team
        member.save()
    chain = submit(user, name="shared-job", shared_with_team=True)
    bob = browser_for(other_user)
    body = bob.get(f"/experiments/{chain.pk}/").content.decode()
    assert "shared-job" in body and f"/experiments/{chain.pk}/stop/" not in body
    body = bob.post(f"/experiments/{chain.pk}/stop/", follow=True).content.decode()
    assert "Only the owner of this job or an admin may do that." in body
    chain.refresh_from_db()
    assert chain.status == ChainStatus.STARTING


def test_detail_uses_constant_queries(cluster, submit, user, page):
    small = submit(user, name="small", nodes=1)

    def count(chain: Chain) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert page.get(f"/experiments/{chain.pk}/").status_code == 200
        return len(ctx.captured_queries)

    count(small)
    few = count(small)
    big = submit(user, name="big", nodes=3, tags=["a", "b", "c"])
    for _ in range(2):  # three attempts, each with ranks
        experiment_services.experiment_stop(actor=user, chain=big)
        finish(big)
        experiment_services.experiment_resume(actor=user, chain=big)
    assert Attempt.objects.filter(chain=big).count() == 3
    assert count(big) == few


def test_logs_page_uses_constant_queries(cluster, submit, user, page):
    small = submit(user, name="small", nodes=1)
    big = submit(user, name="big", nodes=3)

    def count(chain: Chain) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert page.get(f"/experiments/{chain.pk}/logs/").status_code == 200
        return len(ctx.captured_queries)

    count(small)
    assert count(small) == count(big)


# --- submit -------------------------------------------------------------------------------------


def form(ws, **values):
    data = {
        "name": "from-the-form",
        "workspace": str(ws),
        "entrypoint": "train.py",
        "kind": "python",
        "parameters": "--lr 0.1 --name 'two words'",
        "group": "training",
        "nodes": "1",
        "priority": "10",
        "environment": "default",
        "env_vars": "A=1\n# a comment\nB=x=y\n",
        "tags": "vision, baseline",
        "watchdog_seconds": "",
        "whole_life_state": "",
        "custom_rank": "",
        "notes": "",
    }
    data.update(values)
    return data


def test_submit_form_creates_the_job_and_opens_it(cluster, workspace, user, page):
    response = page.post("/submit/", form(workspace))
    chain = Chain.objects.get(name="from-the-form")
    assert response["Location"] == f"/experiments/{chain.pk}/"
    assert chain.parameters == ["--lr", "0.1", "--name", "two words"]
    assert chain.env_vars == {"A": "1", "B": "x=y"}
    assert chain.tag_names == ["baseline", "vision"]
    assert chain.owner == user and chain.priority == 10
    assert chain.run_estimate_seconds is None


@pytest.mark.parametrize(
    ("written", "seconds"), [("6h", 21600), ("21600", 21600), ("90m", 5400), ("1d 12h", 129600), ("2D", 172800)]
)
def test_submit_form_takes_an_expected_run_time_as_people_write_it(cluster, workspace, page, written, seconds):
    page.post("/submit/", form(workspace, run_estimate_seconds=written))
    assert Chain.objects.get(name="from-the-form").run_estimate_seconds == seconds


def test_submit_form_takes_an_expected_run_time_and_the_job_page_shows_it(cluster, workspace, user, page):
    assert "it helps the job start sooner" in page.get("/submit/").content.decode()
    page.post("/submit/", form(workspace, run_estimate_seconds="6h"))
    chain = Chain.objects.get(name="from-the-form")
    assert chain.run_estimate_seconds == 21600
    body = page.get(f"/experiments/{chain.pk}/").content.decode()
    assert "Expected run time" in body
    assert "<dd data-run-estimate>6 h 00 min</dd>" in body


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"group": "nope"}, "group", "Select a valid choice"),
        ({"workspace": "relative/path"}, "workspace", "The workspace must be an absolute directory path."),
        ({"entrypoint": "missing.py"}, "entrypoint", "No such file"),
        ({"env_vars": "JUSTANAME"}, "env_vars", "Line 1: write NAME=value."),
        ({"env_vars": "RANK=3"}, "env_vars", "RANK is set by the platform"),
        ({"parameters": "'unclosed"}, "parameters", "A quote is not closed."),
        ({"nodes": "9"}, "nodes", "usable node(s); this job asks for 9"),
        ({"watchdog_seconds": "5"}, "watchdog_seconds", "greater than or equal to 60"),
        ({"run_estimate_seconds": "0"}, "run_estimate_seconds", "between 1 minute and 30 days"),
        ({"run_estimate_seconds": "59s"}, "run_estimate_seconds", "between 1 minute and 30 days"),
        ({"run_estimate_seconds": "-3600"}, "run_estimate_seconds", "Write a duration such as 6h, 90m or 1d12h"),
        ({"run_estimate_seconds": "2592001"}, "run_estimate_seconds", "between 1 minute and 30 days"),
        ({"run_estimate_seconds": "30d1m"}, "run_estimate_seconds", "between 1 minute and 30 days"),
        ({"run_estimate_seconds": "6 hours"}, "run_estimate_seconds", "Write a duration such as 6h, 90m or 1d12h"),
        ({"run_estimate_seconds": "h"}, "run_estimate_seconds", "Write a duration such as 6h, 90m or 1d12h"),
        ({"run_estimate_seconds": "1h6d"}, "run_estimate_seconds", "Write a duration such as 6h, 90m or 1d12h"),
        ({"tags": "bad/tag"}, "tags", "use letters, digits"),
    ],
)
def test_submit_form_shows_errors_next_to_the_field(cluster, workspace, page, values, field, message):
    response = page.post("/submit/", form(workspace, **values))
    assert response.status_code == 400
    body = response.content.decode()
    assert f'id="id_{field}_error"' in body
    error_at = body.index(f'id="id_{field}_error"')
    assert message.replace("'", "&#x27;") in body[error_at : error_at + 600]
    assert 'aria-invalid="true"' in body
    assert not Chain.objects.exists()


def test_submit_form_refuses_more_nodes_than_the_quota_at_that_level(cluster, workspace, user, page):
    cluster.set_quota(user, 10, 2)
    response = page.post("/submit/", form(workspace, nodes="3", priority="10"))
    assert response.status_code == 400
    body = response.content.decode()
    error_at = body.index('id="id_priority_error"')
    assert (
        "Needs 3 nodes but alice&#x27;s quota in &#x27;training&#x27; at NORMAL is 2 nodes, so it can never start"
        in body[error_at : error_at + 600]
    )
    assert not Chain.objects.exists()


def test_submit_form_duplicate_name(cluster, workspace, submit, user, page):
    submit(user, name="taken")
    response = page.post("/submit/", form(workspace, name="taken"))
    body = response.content.decode()
    assert response.status_code == 400 and 'id="id_name_error"' in body
    assert "Already in use by an unfinished job." in body


def test_submit_form_offers_only_what_the_user_may_use(cluster, user, page):
    from apps.cluster import services as cluster_services

    cluster_services.node_group_upsert(actor=None, name="no-quota-here")
    cluster_services.environment_upsert(actor=None, name="secret-env", image="x")
    body = page.get("/submit/").content.decode()
    assert '<option value="training"' in body and "no-quota-here" not in body
    assert '<option value="default"' in body and "secret-env" not in body


def test_external_users_see_only_their_priorities(cluster, page, user):
    user.role = "external"
    user.save()
    body = page.get("/submit/").content.decode()
    assert ">AUTO<" in body and ">LOW<" in body and ">BELOW_NORMAL<" in body and ">HIGH<" not in body


def test_resubmit_prefills_the_form_with_a_free_name(cluster, submit, user, page):
    chain = submit(user, name="original", parameters=["--epochs", "3"], env_vars={"K": "v"}, tags=["t1"], nodes=2)
    body = page.get(f"/submit/?from={chain.pk}").content.decode()
    assert 'value="original-2"' in body
    assert 'value="--epochs 3"' in body and "K=v" in body and 'value="t1"' in body
    assert "Resubmit a job" in body


def test_cli_preview_follows_the_form(cluster, workspace, page):
    response = page.post("/submit/preview/", form(workspace, nodes="2", priority="30"))
    body = response.content.decode()
    assert "rota submit train.py --lr 0.1 --name &#x27;two words&#x27; -- -n 2 -g training -p HIGH" in body
    assert "--workspace" in body and "-e A=1" in body


def test_cli_command_round_trips_the_fields():
    preview = cli_command(
        {
            "entrypoint": "run.sh",
            "kind": "python",
            "parameters": ["a b"],
            "group": "training",
            "nodes": 1,
            "priority": -1,
            "environment": "",
            "env_vars": {},
            "name": "x",
            "tags": [],
            "workspace": "/w",
            "shared_with_team": True,
            "whole_life_state": 5,
        }
    )
    assert preview.command == "rota submit run.sh 'a b' -- -g training --name x --workspace /w --kind python --share"
    assert preview.not_in_cli == ["whole_life_state"]


def test_submit_without_quota_explains_what_to_do(transactional_db, page):
    body = page.get("/submit/").content.decode()
    assert "You cannot submit jobs yet" in body


# --- account ------------------------------------------------------------------------------------


def test_token_is_shown_once_and_stored_hashed(page, user):
    response = page.post("/account/tokens/", {"name": "laptop", "scope": "read_only", "expires": "7"})
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=user, name="laptop")
    body = response.content.decode()
    raw = body.split("data-token>")[1].split("<")[0]
    assert raw.startswith(settings.ROTA_TOKEN_PREFIX) and token.prefix in raw
    assert raw not in token.digest and token.scope == "read_only"
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert raw not in page.get("/account/tokens/").content.decode()


def test_token_with_a_date_in_the_past_is_refused(page, user):
    response = page.post(
        "/account/tokens/", {"name": "old", "scope": "all", "expires": "date", "expires_on": "2001-01-01"}
    )
    assert response.status_code == 400 and "Choose a day in the future." in response.content.decode()
    assert not ApiToken.objects.filter(user=user).exists()


def test_token_revoke(page, user):
    from apps.accounts.services import token_create

    token = token_create(actor=user, name="ci").token
    response = page.post(f"/account/tokens/{token.pk}/revoke/", follow=True)
    assert "Revoked “ci”" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_tokens_page_without_tokens_explains_them(page):
    assert "No tokens yet" in page.get("/account/tokens/").content.decode()


def test_profile_shows_quota(cluster, submit, user, page):
    submit(user, name="q", nodes=2, priority=10)
    body = page.get("/account/").content.decode()
    assert "Node quota" in body and "NORMAL" in body and "alice" in body


def test_settings_save_language_and_theme(page, user):
    response = page.post("/account/settings/", {"language": "zh-hans", "theme": "dark"})
    assert response.status_code == 302
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert response.cookies["rota_theme"].value == "dark"
    preference = UserPreference.objects.get(user=user)
    assert (preference.language, preference.theme) == ("zh-hans", "dark")


def test_language_switch_returns_to_the_same_place(page, user):
    response = page.post("/language/", {"language": "zh-hans", "next": "/experiments/?status=active&page=2"})
    assert response["Location"] == "/experiments/?status=active&page=2"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert UserPreference.objects.get(user=user).language == "zh-hans"


def test_language_switch_refuses_other_sites(page):
    response = page.post("/language/", {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_theme_switch_from_script_answers_204(page, user):
    response = page.post("/theme/", {"theme": "light"}, **HTMX)
    assert response.status_code == 204 and response.cookies["rota_theme"].value == "light"
    assert page.post("/theme/", {"theme": "purple"}, **HTMX).status_code == 400


def test_the_page_is_served_in_chinese(cluster, submit, user, browser_for):
    submit(user, name="中文任务")
    zh = browser_for(user, language="zh-hans")
    body = zh.get("/").content.decode()
    assert 'lang="zh-hans"' in body
    assert "提交任务" in body and "我的配额" in body
    assert "Submit a job" not in body and "My quota" not in body


def test_pages_render_for_a_user_without_anything(transactional_db, browser_for):
    lonely = browser_for(UserFactory(username="lonely"))
    for url in ("/", "/experiments/", "/submit/", "/account/", "/account/tokens/", "/account/settings/"):
        assert lonely.get(url).status_code == 200, url


@pytest.mark.parametrize("url", ["/experiments/999999/", "/experiments/999999/logs/", "/submit/?from=999999"])
def test_unknown_job_is_a_friendly_404_even_in_debug(page, settings, url):
    settings.DEBUG = True
    response = page.get(url)
    assert response.status_code == 404
    body = response.content.decode()
    assert "There is nothing here" in body and 'href="/experiments/"' in body


def test_admin_and_monitor_addresses_lead_admins_to_the_admin_and_others_to_the_dashboard(cluster, browser_for, user):
    staff = UserFactory(username="ops-staff", groups=["root"], is_staff=True)
    for typed in ("/admin", "/admin/", "/monitor", "/monitor/"):
        response = browser_for(staff).get(typed, follow=True)
        assert response.redirect_chain[-1] == ("/monitor/users/", 302), (typed, response.redirect_chain)
        assert response.status_code == 200
        response = browser_for(user).get(typed, follow=True)
        assert response.redirect_chain[-1] == ("/#cluster", 302), (typed, response.redirect_chain)
        assert "The admin pages are for platform admins." in response.content.decode()


def test_small_things_read_right_cpu_node_not_counted_singular_container_attempt_as_job_dot_n(
    cluster, submit, user, page
):
    from django.contrib.auth.models import Group

    from apps.cluster import services as cluster_services
    from apps.quotas import services as quota_services

    cpu = cluster_services.node_group_upsert(actor=None, name="jupyter_cpu")
    cluster_services.node_upsert(actor=None, name="cpu-0", group=cpu, gpu_count=0)
    public = Group.objects.get(name="public")
    quota_services.quota_set(actor=None, group=public, kind="jupyter_containers", node_group=cpu, value=1)
    chain = submit(user, name="two-attempts")
    experiment_services.experiment_stop(actor=user, chain=chain)
    lifecycle.attempt_mark_finished(attempt_id=chain.latest_attempt_id, status=WorkerStatus.STOPPED)
    experiment_services.experiment_resume(actor=user, chain=chain)

    dashboard = page.get("/").content.decode()
    stat = dashboard[: dashboard.index("Training nodes busy")][-120:]
    assert stat.endswith('> / 4</span></div><div class="stat-label">'), stat  # the CPU node is not counted
    assert "1 container · " in page.get("/account/").content.decode()
    detail = page.get(f"/experiments/{chain.pk}/").content.decode()
    assert f"#{chain.pk}.1</span>" in detail and f"#{chain.pk}.2</span>" in detail
    assert ">id " not in detail


def test_a_job_waiting_for_quota_says_when_the_users_own_newer_job_holds_it(
    transactional_db, submit, user, other_user, browser_for
):
    from tests.conftest import Cluster

    Cluster(4, {10: 1})  # one node at NORMAL each
    older = submit(user, name="older")
    experiment_services.experiment_suspend(actor=user, chain=older)
    older.refresh_from_db()
    lifecycle.attempt_mark_suspended(attempt_id=older.latest_attempt_id)
    newer = submit(user, name="newer")  # takes the user's one node
    experiment_services.experiment_resume(actor=user, chain=older)
    older.refresh_from_db()
    assert older.status == ChainStatus.SUSPENDED
    assert [h["chain_id"] for h in older.latest_attempt.pending_holders] == [newer.pk]

    body = browser_for(user).get(f"/experiments/{older.pk}/").content.decode()
    assert "Waiting for your quota" in body
    hint = body[body.index("data-own-holders") :]
    hint = re.sub(r"\s+", " ", hint[: hint.index("</div>")])
    assert "Your own job holds the quota this one needs:" in hint
    assert f'<a href="/experiments/{newer.pk}/">#{newer.pk}</a>.' in hint
    assert "suspend or stop one of them to let it run first." in hint

    # Not on the newer job's page (it runs), nor for an admin looking at the user's job (not theirs).
    assert "data-own-holders" not in browser_for(user).get(f"/experiments/{newer.pk}/").content.decode()
    admin = UserFactory(username="ops", groups=["root"])
    assert "data-own-holders" not in browser_for(admin).get(f"/experiments/{older.pk}/").content.decode()


def test_own_quota_holders_only_for_the_quota_reason_and_the_owners_other_jobs():
    from apps.web.presentation import own_quota_holders

    holders = [
        {"attempt_id": 9, "chain_id": 7, "user": "alice", "nodes": 1, "priority": 10},
        {"attempt_id": 10, "chain_id": 8, "user": "bob", "nodes": 1, "priority": 10},
        {"attempt_id": 11, "chain_id": 7, "user": "alice", "nodes": 1, "priority": 10},
        {"attempt_id": 12, "chain_id": 5, "user": "alice", "nodes": 1, "priority": 10},  # itself
        {"attempt_id": 13, "chain_id": None, "user": "alice", "nodes": 1, "priority": 10},
    ]
    assert own_quota_holders(code="QUOTA", holders=holders, owner="alice", chain_id=5) == [7]
    assert own_quota_holders(code="priority", holders=holders, owner="alice", chain_id=5) == []
    assert own_quota_holders(code="quota", holders=[], owner="alice", chain_id=5) == []


def test_submit_form_starts_on_a_training_group_then_on_the_users_last_one(cluster, submit, browser_for):
    from apps.cluster import services as cluster_services

    cpu = cluster_services.node_group_upsert(actor=None, name="a_cpu")  # sorts first
    cluster_services.node_upsert(actor=None, name="cpu-0", group=cpu, gpu_count=0)
    admin = UserFactory(username="ops-admin", groups=["root"])  # may submit to every group
    page = browser_for(admin)

    def selected_group() -> str:
        import re

        body = page.get("/submit/").content.decode()
        select = body[body.index('name="group"') :]
        select = select[: select.index("</select>")]
        return re.findall(r'<option value="([^"]+)"[^>]* selected', select)[0]

    assert selected_group() == "training"  # not the CPU group, where training cannot run
    gpu2 = cluster_services.node_group_upsert(actor=None, name="training2")
    cluster_services.node_upsert(actor=None, name="g2-0", group=gpu2, gpu_count=8)
    cluster_services.node_upsert(actor=None, name="g2-1", group=gpu2, gpu_count=8)
    from apps.quotas import services as quota_services

    quota_services.quota_set(actor=None, user=admin, kind="node", node_group=gpu2, priority=10, value=8)
    assert selected_group() == "training2"  # the training group with the most quota
    submit(admin, name="there", group="training")
    assert selected_group() == "training"  # then the group of the last job


def test_submit_form_offers_the_users_storage_as_workspace_and_says_so(cluster, tmp_path, user, page, settings):
    from django.contrib.auth.models import Group

    from apps.cluster import services as cluster_services

    public = Group.objects.get_or_create(name="public")[0]
    (tmp_path / "shared").mkdir()
    (tmp_path / "home" / "alice").mkdir(parents=True)
    (tmp_path / "home" / "alice" / "train.py").write_text("print('hello')\n")
    for name, source, read_only in (
        ("datasets", f"{tmp_path}/shared", True),  # read-only: never a workspace
        ("home", f"{tmp_path}/home/{{user.username}}", False),
        ("scratch", f"{tmp_path}/scratch-missing", False),  # not on this machine: not offered
    ):
        cluster_services.mount_rule_upsert(
            actor=None,
            name=name,
            source=source,
            container_path=f"/mnt/{name}",
            read_only=read_only,
            owner_groups=[public],
        )
    home = f"{tmp_path}/home/alice"

    def workspace_field(body: str) -> tuple[str, str]:
        """The workspace <input> tag and its help text."""
        tag = body[body.rindex("<input", 0, body.index('name="workspace"')) :]
        help_at = body.index('id="id_workspace_helptext"')
        return tag[: tag.index(">") + 1], body[help_at : body.index("</div>", help_at)]

    tag, help_text = workspace_field(page.get("/submit/").content.decode())
    assert f'value="{home}"' in tag
    assert f"Yours is {home} (your storage on the cluster): put your code there." in help_text

    settings.ROTA_BACKEND = "kubernetes"  # in a container the mount's path there is the workspace
    assert 'value="/mnt/home"' in workspace_field(page.get("/submit/").content.decode())[0]
    settings.ROTA_BACKEND = "local"

    response = page.post("/submit/", form(home, name="in-my-home"))
    assert response.status_code == 302
    assert Chain.objects.get(name="in-my-home").workspace == home

    cluster_services.mount_rule_upsert(
        actor=None,
        name="home",
        source=f"{tmp_path}/home/{{user.username}}",
        container_path="/mnt/home",
        active=False,
        owner_groups=[public],
    )
    Chain.objects.all().delete()
    tag, help_text = workspace_field(page.get("/submit/").content.decode())
    assert "value=" not in tag
    assert "No storage is set up for you yet: ask an admin which directory to use." in help_text


def test_a_rank_ended_after_go_suspend_reads_as_suspended_not_killed(cluster, submit, user, page):
    from apps.experiments.choices import RankStatus

    chain = submit(user, name="polite", nodes=2)
    chain.refresh_from_db()
    attempt_id = chain.latest_attempt_id
    for rank in (0, 1):
        lifecycle.rank_update(attempt_id=attempt_id, rank=rank, status=RankStatus.RUNNING)
    assert lifecycle.attempt_mark_running(attempt_id=attempt_id)
    lifecycle.attempt_set_whole_life_state(attempt_id=attempt_id, value=7)
    assert lifecycle.attempt_go_suspend(attempt_id=attempt_id, rank=0)  # rank 0 saved its checkpoint; rank 1 did not
    for rank in (0, 1):
        lifecycle.rank_update(
            attempt_id=attempt_id, rank=rank, status=RankStatus.KILLED, exit_code=137, message="killed by SIGKILL"
        )
    body = page.get(f"/experiments/{chain.pk}/").content.decode()
    outcomes = re.findall(r"data-rank-outcome>([^<]*)<", body)
    assert [o.strip() for o in outcomes] == ["suspended after checkpoint (step 7)", "exit 137 killed by SIGKILL"]


@pytest.mark.parametrize(
    ("euid", "posix_uid", "policy", "warned", "refused"),
    [
        (1000, None, "refuse", True, False),  # not root: nobody can be refused, nobody is isolated
        (1000, 4242, "refuse", True, False),
        (0, None, "run-as-server", True, False),
        (0, None, "refuse", False, True),
        (0, 4242, "refuse", False, False),
        (0, 4242, "run-as-server", False, False),
    ],
)
def test_the_submit_page_says_when_the_local_backend_does_not_isolate_jobs(
    page, user, settings, monkeypatch, euid, posix_uid, policy, warned, refused
):
    """Only a server running as root starts a job as its owner's POSIX account; otherwise jobs
    share one Unix account, and the page says so before anyone submits. As root, a user without an
    account is told that submitting is refused and what to ask for."""
    from apps.launcher.backends import local

    settings.ROTA_BACKEND = "local"
    settings.ROTA_LOCAL_UNMAPPED_OWNERS = policy
    monkeypatch.setattr(local.os, "geteuid", lambda: euid)
    user.posix_uid = posix_uid
    user.save(update_fields=["posix_uid"])
    body = page.get("/submit/").content.decode()
    assert ("data-single-tenant" in body) is warned
    assert ("Jobs here are not isolated from each other" in body) is warned
    assert ("data-no-posix-account" in body) is refused
    assert ("Your jobs cannot run here yet" in body) is refused
