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
