"""Live regions in a real browser: a region refreshes itself on the realtime event its template
declares (hx-trigger on an event realtime.js dispatches), and no main page throws a JavaScript
error or leaves a console error (a module that failed to load, a blocked resource)."""

from __future__ import annotations

import re
import textwrap

import pytest
from playwright.sync_api import expect

from apps.accounts import services as account_services
from apps.cluster import services as cluster_services
from apps.cluster.models import Node
from apps.experiments import services as experiment_services
from apps.experiments.models import Chain
from tests.browser.conftest import sign_in
from tests.browser.test_portal import TICKER
from tests.conftest import wait_until
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every request a live region sends from now on, with the event that triggered it. First it waits
# until no region has a request in flight (htmx marks the region `htmx-request` meanwhile): the
# answer to a request sent before the recording began (the refresh on the socket opening) could
# show the change the test makes next without being recorded.
RECORD_REFRESHES = """async () => {
    while (document.querySelector("[data-live].htmx-request")) await new Promise((r) => setTimeout(r, 25));
    window.__refreshes = [];
    if (window.__recording) return;
    window.__recording = true;
    document.body.addEventListener("htmx:beforeRequest", (e) => {
        const region = e.detail.elt;
        if (!region.matches("[data-live]")) return;
        const cause = e.detail.requestConfig.triggeringEvent;
        window.__refreshes.push([region.getAttribute("hx-target"), cause ? cause.type : null]);
    });
}"""

# Wait until a region asked for itself because of the event `cause`.
REFRESHED_ON = "(cause) => (window.__refreshes || []).some((r) => r[1] === cause)"


def test_live_regions_refresh_on_the_realtime_events_their_templates_declare(
    browser_page, cluster, submit, user, workspace
):
    tab = browser_page
    (workspace / "ticker.py").write_text(textwrap.dedent(TICKER))
    chain = submit(user, name="evented", entrypoint="ticker.py")
    wait_until(lambda: Chain.objects.get(pk=chain.pk).status == "running", timeout=30, message="job to run")
    sign_in(tab)

    # The job page: the header region listens to its own chain's events (rota:chain-<id>).
    tab.goto(f"{tab.base}/experiments/{chain.pk}/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    header = tab.locator("#chain-live h1 [data-status]")
    expect(header).to_have_attribute("data-status", "running")
    tab.evaluate(RECORD_REFRESHES)
    experiment_services.experiment_suspend(actor=user, chain=Chain.objects.get(pk=chain.pk))
    expect(header).to_have_attribute("data-status", "held")
    tab.wait_for_function(REFRESHED_ON, arg=f"rota:chain-{chain.pk}")
    refreshes = tab.evaluate("window.__refreshes")
    assert refreshes, "the region never asked for itself"
    assert {tuple(r) for r in refreshes} == {("#chain-live", f"rota:chain-{chain.pk}")}
    assert tab.evaluate("typeof window.Rota") == "undefined"  # modules: nothing global of ours

    # The list: one region for the table, refreshed on any job's status event.
    tab.goto(f"{tab.base}/experiments/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    row_status = tab.locator(f"#row-{chain.pk} [data-status]")
    expect(row_status).to_have_attribute("data-status", "held")
    tab.evaluate(RECORD_REFRESHES)
    experiment_services.experiment_resume(actor=user, chain=Chain.objects.get(pk=chain.pk))
    expect(row_status).to_have_attribute("data-status", re.compile(r"^(waiting|starting|running)$"))
    tab.wait_for_function(REFRESHED_ON, arg="rota:chain.status")
    causes = {cause for _target, cause in tab.evaluate("window.__refreshes")}
    assert causes and causes <= {"rota:chain.status", "rota:attempt.started", "rota:chain.explanation"}
    experiment_services.experiment_stop(actor=user, chain=Chain.objects.get(pk=chain.pk))
    expect(row_status).to_have_attribute("data-status", re.compile(r"^(stopping|stopped|canceled)$"))


def test_the_admin_node_tree_refreshes_on_node_events(browser_page, cluster):
    tab = browser_page
    account_services.ensure_admin_groups()
    root = UserFactory(username="l-root", groups=["root"])
    sign_in(tab, "l-root")
    tab.goto(tab.base + "/monitor/nodes/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    expect(tab.locator('tr[data-node="n2"] [data-node-state]')).to_have_attribute("data-node-state", "free")
    tab.evaluate(RECORD_REFRESHES)
    cluster_services.node_disable(actor=root, node=Node.objects.get(name="n2"), reason="ECC errors")
    expect(tab.locator('tr[data-node="n2"] [data-node-state]')).to_have_attribute("data-node-state", "disabled")
    tab.wait_for_function(REFRESHED_ON, arg="rota:node.state")
    causes = {tuple(r) for r in tab.evaluate("window.__refreshes")}
    assert causes and causes <= {("#nodes-live", "rota:node.state"), ("#nodes-live", "rota:scheduler.pass")}


def test_no_main_page_throws_or_logs_a_javascript_error(browser_page, cluster, submit, user, workspace):
    tab = browser_page
    console_errors: list[str] = []
    tab.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    (workspace / "hello.py").write_text("print('hello', flush=True)\n")
    chain = submit(user, name="pages", entrypoint="hello.py")
    wait_until(lambda: Chain.objects.get(pk=chain.pk).finished, timeout=30, message="job to finish")
    account_services.ensure_admin_groups()
    UserFactory(username="p-root", groups=["root"])

    pages = [
        "/",
        "/experiments/",
        f"/experiments/{chain.pk}/",
        f"/experiments/{chain.pk}/logs/",
        "/submit/",
        "/notifications/",
        "/containers/",
        "/discuss/",
        "/discuss/new/",
        "/account/",
        "/account/tokens/",
        "/account/settings/",
    ]
    sign_in(tab)
    for path in pages:
        tab.goto(tab.base + path)
        # The entry module ran (it sets the realtime indicator) on every signed-in page.
        expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
        if path.endswith("/logs/"):  # the log viewer's modules loaded and read the log
            expect(tab.locator("[data-log-lines] .ln .tx").filter(has_text="hello")).to_have_count(1)
        assert not console_errors, f"{path}: {console_errors}"

    tab.context.clear_cookies()
    sign_in(tab, "p-root")
    for path in ["/monitor/users/", "/monitor/nodes/", "/monitor/scheduler/", "/monitor/quotas/", "/monitor/audit/"]:
        tab.goto(tab.base + path)
        expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
        assert not console_errors, f"{path}: {console_errors}"


def test_a_refresh_that_answers_while_a_menu_is_open_waits_until_it_is_closed(browser_page, cluster):
    tab = browser_page
    account_services.ensure_admin_groups()
    root = UserFactory(username="m-root", groups=["root"])
    sign_in(tab, "m-root")
    tab.goto(tab.base + "/monitor/nodes/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    tab.evaluate(RECORD_REFRESHES)  # also: no refresh in flight from here on

    # Hold the tree's next refresh at the network until the admin has opened a node's menu.
    held: list = []

    def hold(route) -> None:
        if route.request.headers.get("hx-request"):
            held.append(route)
        else:
            route.continue_()

    tab.route("**/monitor/nodes/**", hold)
    with tab.expect_request(lambda r: "/monitor/nodes/" in r.url and r.headers.get("hx-request")):
        cluster_services.node_disable(actor=root, node=Node.objects.get(name="n2"), reason="ECC errors")
    for _ in range(500):  # the route handler runs as Playwright dispatches the request's events
        if held:
            break
        tab.wait_for_timeout(20)
    assert held, "the refresh on the node event was not held"
    row = tab.locator('tr[data-node="n1"]')
    row.get_by_label("Actions for n1").click()
    row.locator('form:has(input[value="drain"])').get_by_label("Reason").fill("disk swap")
    held[0].continue_()
    tab.unroute("**/monitor/nodes/**")  # lets anything else it held go on
    tab.wait_for_function("() => !document.querySelector('[data-live].htmx-request')")

    # The answer was kept back: the menu is open with what was typed, the row not yet refreshed.
    expect(row.locator("details.menu")).to_have_attribute("open", "")
    assert row.locator('form:has(input[value="drain"])').get_by_label("Reason").input_value() == "disk swap"
    n2 = tab.locator('tr[data-node="n2"] [data-node-state]')
    expect(n2).to_have_attribute("data-node-state", "free")
    # Closed: the tree fetches itself again and shows the change.
    row.get_by_label("Actions for n1").click()
    expect(n2).to_have_attribute("data-node-state", "disabled")
