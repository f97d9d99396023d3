"""An admin's session in a real browser: create a user and copy their first token, set a quota in
the grid, drain a node, and find the three changes in the audit log; the scheduler overview is live
over the websocket."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.accounts.models import User
from apps.cluster import services as cluster_services
from apps.cluster.choices import NodeState
from apps.cluster.models import Node
from apps.quotas.models import Quota
from tests.browser.conftest import sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_creates_a_user_sets_a_quota_drains_a_node_and_reads_the_audit_log(browser_page, cluster):
    tab = browser_page
    UserFactory(username="b-root", groups=["root"])
    sign_in(tab, "b-root")
    tab.get_by_role("link", name="Admin").click()
    expect(tab.get_by_role("heading", name="Users", exact=True)).to_be_visible()

    # Create a user: the token is shown once, ready to copy.
    tab.goto(tab.base + "/monitor/users/new/")
    tab.get_by_label("User name").fill("newbie")
    tab.get_by_role("button", name="Create user").click()
    expect(tab.locator("[data-token-issued]")).to_contain_text("User newbie created, with an API token")
    expect(tab.locator("#new-token")).to_have_text(re.compile(r"^\S{20,}$"))

    # Give them 2 nodes at HIGH in "training" in the quota grid.
    tab.goto(tab.base + "/monitor/quotas/?user=newbie")
    tab.get_by_label("training HIGH", exact=True).fill("2")
    tab.get_by_role("button", name="Save quotas").click()
    expect(tab.get_by_text("1 quota changed; it takes effect at the next scheduling pass.")).to_be_visible()
    assert Quota.objects.get(user__username="newbie", kind="node", priority=30).value == 2

    # Drain n1 from the node tree: confirm, then the tree shows it drained (idle).
    tab.goto(tab.base + "/monitor/nodes/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    row = tab.locator('tr[data-node="n1"]')
    row.get_by_label("Actions for n1").click()
    row.locator('form:has(input[value="drain"])').get_by_label("Reason").fill("disk swap")
    row.get_by_role("button", name="Drain").click()
    dialog = tab.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Confirm").click()
    expect(tab.locator('tr[data-node="n1"]')).to_contain_text("Drained")
    expect(tab.locator('tr[data-node="n1"]')).to_contain_text("disk swap")
    assert Node.objects.get(name="n1").state == NodeState.DRAINING

    # The audit log has each change, with who did it; filtered by the node's action.
    tab.goto(tab.base + "/monitor/audit/?actor=b-root")
    table = tab.locator("table")
    for action in ("user.create", "token.issue", "quota.set", "node.drain"):
        expect(table.get_by_role("link", name=action, exact=True)).to_be_visible()
    tab.get_by_role("link", name="node.drain", exact=True).click()
    expect(tab.locator("tr[data-audit]")).to_have_count(1)
    expect(tab.locator("tr[data-audit]")).to_contain_text("disk swap")

    # Another admin disables n2 while the scheduler overview is open: it refreshes by itself.
    tab.goto(tab.base + "/monitor/scheduler/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    load = tab.locator('tbody[data-load="training"]')
    expect(load).to_contain_text("4 nodes: 0 used, 3 free, 1 unavailable")
    cluster_services.node_disable(
        actor=User.objects.get(username="b-root"), node=Node.objects.get(name="n2"), reason="x"
    )
    expect(load).to_contain_text("4 nodes: 0 used, 2 free, 2 unavailable")


def test_the_scheduler_overview_charts_the_last_day_and_week(browser_page, cluster, load_history):
    from django.utils import timezone

    from apps.scheduler.history import minute_of
    from apps.scheduler.models import LoadSample

    at = timezone.now()
    now = minute_of(at)
    recent = range(now - 119, now + 1)  # the last two hours, every minute
    older = [m for m in range(now - 3000, now - 2000) if m % 10 == 0]  # a day and a half ago, thinned

    def sample(m: int) -> LoadSample:
        back = now - m
        levels = {"30": [0, 5], "10": [0, 2]} if back == 0 else {"10": [back % 5, 2]}
        used = back % 5
        return LoadSample(
            minute=m, group=cluster.group, nodes=4, used=used, free=4 - used, gpus=32, gpus_used=8 * used,
            running=used, waiting=7 if back == 0 else 2, levels=levels,
        )  # fmt: skip

    load_history([sample(m) for m in [*recent, *older]], now=at)
    tab = browser_page
    UserFactory(username="c-ops", groups=["ops"])
    sign_in(tab, "c-ops")
    tab.goto(tab.base + "/monitor/scheduler/")
    group = tab.locator('[data-history-group="training"]')
    expect(group.locator("canvas")).to_have_count(2)  # nodes, jobs
    charts = group.locator('[role="img"]')
    expect(charts.first).to_have_attribute("aria-label", re.compile(r"^Nodes\. Nodes used: 0 now, at most 4, "))
    expect(charts.nth(1)).to_have_attribute("aria-label", re.compile(r"Waiting at HIGH: 5 now, at most 5, "))
    group.get_by_text("The figures of training as a table").click()
    rows = group.locator("details tbody tr")
    expect(rows).to_have_count(2)  # hourly: now and an hour ago
    any_time = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")
    expect(rows.first.locator("td")).to_have_text([any_time, "0", "4", "4", "0 / 32", "0", "7"])
    expect(rows.nth(1).locator("td")).to_have_text([any_time, "0", "4", "4", "0 / 32", "0", "2"])

    tab.get_by_role("button", name="Last 7 days").click()
    expect(tab.get_by_role("button", name="Last 7 days")).to_have_attribute("aria-pressed", "true")
    group = tab.locator('[data-history-group="training"]')
    expect(group.locator("canvas")).to_have_count(2)
    # every six hours from the last tenth minute: it (sampled), then 36, 42 and 48 hours back
    expect(group.locator("details tbody tr")).to_have_count(4)
