"""A researcher's session in a real browser: sign in, submit through the form, watch the job run
and its log stream in, suspend, resume, stop; filter the list; switch to Chinese and back; search
the log across ranks and link to a line."""

from __future__ import annotations

import re
import textwrap

import pytest
from playwright.sync_api import expect

from apps.cluster import services as cluster_services
from apps.experiments.models import Chain
from apps.quotas import services as quota_services
from tests.browser.conftest import sign_in
from tests.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TICKER = """
    import time
    from rota import job

    start = job.get_whole_life_state()
    print("resumed at", start if start else "starting", flush=True)
    tick = start
    while True:
        tick += 1
        print("tick", tick, flush=True)
        if job.receive_suspend_command(poll=False):
            job.set_whole_life_state(tick)
            print("suspending at", tick, flush=True)
            job.go_suspend()
        time.sleep(0.2)
"""


def header_status(tab):
    return tab.locator("#chain-live h1 [data-status]")


def confirm(tab) -> None:
    dialog = tab.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Confirm").click()


def test_submit_follow_suspend_resume_stop_filter_and_switch_language(browser_page, cluster, user, workspace):
    tab = browser_page
    (workspace / "ticker.py").write_text(textwrap.dedent(TICKER))
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Nothing running or waiting")).to_be_visible()
    # The page is live over its websocket (polling is only the fallback while it is not).
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")

    # Submit through the form; the CLI preview follows what is typed.
    tab.get_by_role("link", name="Submit a job").first.click()
    tab.get_by_label("Name", exact=True).fill("browser-job")
    tab.get_by_label("Workspace").fill(str(workspace))
    tab.get_by_label("Script or program").fill("ticker.py")
    tab.get_by_label("Priority").select_option(label="NORMAL")
    tab.get_by_label("Tags").fill("ui e2e")
    expect(tab.locator("[data-cli-command]")).to_contain_text("rota submit ticker.py -- -g training -p NORMAL")
    tab.get_by_role("button", name="Submit", exact=True).click()
    tab.wait_for_url(re.compile(r"/experiments/\d+/$"))
    chain = Chain.objects.get(name="browser-job")
    expect(tab.get_by_text("Submitted “browser-job”")).to_be_visible()

    # It goes running (the page updates itself), and its log streams in.
    expect(header_status(tab)).to_have_attribute("data-status", "running")
    tab.get_by_role("link", name="Logs").first.click()
    tab.wait_for_url(f"**/experiments/{chain.pk}/logs/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    lines = tab.locator("[data-log-lines] .ln .tx")
    expect(lines.filter(has_text=re.compile(r"^tick 3$"))).to_have_count(1)
    expect(lines.filter(has_text=re.compile(r"^tick 20$"))).to_have_count(1)  # still arriving: followed

    # Suspend: the job checkpoints and waits, held, until resumed.
    tab.get_by_role("button", name="Suspend").click()
    confirm(tab)
    expect(header_status(tab)).to_have_attribute("data-status", "held")
    expect(lines.filter(has_text="suspending at")).to_have_count(1)
    tab.get_by_role("button", name="Resume").first.click()
    expect(header_status(tab)).to_have_attribute("data-status", "running")
    expect(tab.locator("[data-log-lines] .log-sep", has_text="Attempt 2 starts")).to_be_visible()
    expect(lines.filter(has_text=re.compile(r"^resumed at \d+$"))).to_have_count(1)

    # Stop it.
    tab.get_by_role("button", name="Stop").click()
    confirm(tab)
    expect(header_status(tab)).to_have_attribute("data-status", "stopped")
    wait_until(lambda: Chain.objects.get(pk=chain.pk).status == "stopped", message="stopped in the database")

    # Filter the list (the filters land in the address).
    tab.get_by_role("link", name="Experiments").first.click()
    rows = tab.locator("#chain-results tbody tr")
    expect(rows).to_have_count(1)
    tab.get_by_role("link", name="Running").click()
    expect(tab.get_by_role("heading", name="No job matches these filters")).to_be_visible()
    tab.get_by_role("link", name="Finished").click()
    expect(rows).to_have_count(1)
    tab.get_by_label("Exactly").select_option(label="Stopped")
    expect(tab).to_have_url(re.compile(r"status=stopped"))
    expect(rows).to_have_count(1)
    tab.get_by_label("Name contains").fill("nothing-like-this")
    expect(tab.get_by_role("heading", name="No job matches these filters")).to_be_visible()
    expect(tab).to_have_url(re.compile(r"name=nothing-like-this"))
    tab.get_by_label("Name contains").fill("browser")
    expect(rows).to_have_count(1)
    filtered_url = tab.url

    # Switch to Chinese and back, staying on the same filtered list.
    tab.locator("[data-language-menu] summary").click()
    tab.get_by_role("button", name="简体中文").click()
    expect(tab.get_by_role("heading", name="实验", exact=True)).to_be_visible()
    assert tab.url == filtered_url
    expect(rows).to_have_count(1)
    tab.locator("[data-language-menu] summary").click()
    tab.get_by_role("button", name="English").click()
    expect(tab.get_by_role("heading", name="Experiments", exact=True)).to_be_visible()
    assert tab.url == filtered_url


SPEAKER = """
    import os
    rank = os.environ["RANK"]
    for i in range(200):
        print(f"rank {rank} line {i}" + (" needle" if rank == "1" and i == 150 else ""), flush=True)
"""


def test_log_search_across_ranks_and_link_to_a_line(browser_page, cluster, submit, user, workspace):
    tab = browser_page
    (workspace / "speaker.py").write_text(textwrap.dedent(SPEAKER))
    chain = submit(user, name="two-ranks", entrypoint="speaker.py", nodes=2)
    wait_until(lambda: Chain.objects.get(pk=chain.pk).status == "succeeded", timeout=30, message="job to finish")
    sign_in(tab)
    tab.goto(f"{tab.base}/experiments/{chain.pk}/logs/")
    lines = tab.locator("[data-log-lines] .ln .tx")
    expect(lines.filter(has_text="rank 0 line 199")).to_have_count(1)
    expect(tab.locator("[data-log-lines] [data-end]")).to_contain_text("Nothing more will come")

    # Search: which ranks match, then jump to the match in rank 1.
    search = tab.get_by_label("Search the log")
    search.fill("needle")
    search.press("Enter")
    bar = tab.locator("[data-log-searchbar]")
    expect(bar.get_by_role("button", name="rank 1 (1)")).to_be_enabled()
    expect(bar.get_by_role("button", name="rank 0 (0)")).to_be_disabled()
    bar.get_by_role("button", name="rank 1 (1)").click()
    expect(tab.get_by_label("Rank", exact=True)).to_have_value("1")
    target = tab.locator("[data-log-lines] .ln.target")
    expect(target).to_contain_text("rank 1 line 150 needle")
    expect(target.locator("mark.hit")).to_have_text("needle")

    # Link to a line: the address points at it, and opening it shows that line.
    line = lines.filter(has_text=re.compile(r"^rank 1 line 120$"))
    line.locator("xpath=..").locator(".g").click()
    expect(tab).to_have_url(re.compile(r"rank=1&attempt=\d+&at=\d+"))
    linked = tab.url
    tab.goto(tab.base + "/")
    tab.goto(linked)
    expect(tab.locator("[data-log-lines] .ln.target")).to_contain_text("rank 1 line 120")

    # Wrap toggle and download link.
    tab.get_by_role("button", name="Wrap").click()
    expect(tab.locator("[data-log-body]")).to_have_class(re.compile(r"\bwrap\b"))
    tab.locator("summary", has_text="Download").click()
    link = tab.locator("[data-download-attempt]").first
    expect(link).to_have_attribute("href", re.compile(r"rank=1&attempt=\d+"))


def replace_header_now(tab) -> None:
    """Force the live refresh the user races: the job header is re-rendered and swapped in (as a
    realtime event or the poll would do), and the old one, with the form that was clicked, is gone."""
    tab.evaluate(
        """async () => {
            window.__oldHeader = document.getElementById("chain-live");
            await htmx.ajax("GET", location.pathname, {target: "#chain-live", swap: "outerHTML"});
        }"""
    )
    # htmx drops a request from a source that has one in flight (a realtime refresh that started a
    # moment earlier): then that one replaces the header when it lands. Either way, wait for it.
    tab.wait_for_function("() => !document.body.contains(window.__oldHeader)", timeout=15_000)
    expect(tab.locator("#chain-live")).to_have_count(1)


def test_a_confirmed_suspend_or_stop_is_sent_even_when_a_refresh_replaced_the_header(
    browser_page, cluster, submit, user, workspace
):
    tab = browser_page
    (workspace / "ticker.py").write_text(textwrap.dedent(TICKER))
    chain = submit(user, name="racing", entrypoint="ticker.py")
    wait_until(lambda: Chain.objects.get(pk=chain.pk).status == "running", timeout=30, message="job to run")
    sign_in(tab)
    tab.goto(f"{tab.base}/experiments/{chain.pk}/")
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    expect(header_status(tab)).to_have_attribute("data-status", "running")

    # While the question is open, live refreshes wait (the header stays where the user clicked) ...
    tab.get_by_role("button", name="Suspend").click()
    expect(tab.locator("#confirm-dialog")).to_be_visible()
    held_back = tab.evaluate(
        """() => { const region = document.getElementById("chain-live").closest("[data-live]");
                   htmx.trigger(region, "rota:refresh");
                   return region.dataset.liveDeferred === "1" && document.getElementById("chain-live") !== null; }"""
    )
    assert held_back, "a live refresh went ahead under the open confirmation"
    # ... and when one replaced it anyway (in flight before the click), OK still sends the request.
    replace_header_now(tab)
    confirm(tab)
    expect(header_status(tab)).to_have_attribute("data-status", re.compile(r"^(suspending|held)$"))
    wait_until(lambda: Chain.objects.get(pk=chain.pk).held, message="the suspend to reach the server")

    tab.get_by_role("button", name="Stop").click()
    expect(tab.locator("#confirm-dialog")).to_be_visible()
    replace_header_now(tab)
    confirm(tab)
    expect(header_status(tab)).to_have_attribute("data-status", re.compile(r"^(stopping|stopped|canceled)$"))
    wait_until(lambda: Chain.objects.get(pk=chain.pk).finished, message="the stop to reach the server")


def open_more_actions(tab) -> None:
    """Open the job header's "More actions" menu once the page is live and no refresh is in flight
    (one landing after the click would replace the header, closing the menu; while it is open, live
    refreshes wait)."""
    expect(tab.locator("#rt-status")).to_have_attribute("data-state", "live")
    tab.wait_for_function("() => !document.querySelector('[data-live].htmx-request')")
    tab.locator('#chain-live summary[aria-label="More actions"]').click()
    expect(tab.locator('#chain-live details.menu[open] > summary[aria-label="More actions"]')).to_have_count(1)


def test_move_a_waiting_job_and_stop_a_running_one_as_failed_from_the_menu(
    browser_page, cluster, submit, user, workspace
):
    tab = browser_page
    (workspace / "ticker.py").write_text(textwrap.dedent(TICKER))
    spare = cluster_services.node_group_upsert(actor=None, name="spare")
    cluster_services.node_upsert(actor=None, name="s0", group=spare, gpu_count=8, room="a")
    quota_services.quota_set(actor=None, user=user, kind="node", node_group=spare, priority=10, value=1)
    cluster.set_quota(user, 10, 1)  # one node in training: the second job waits for the first
    runner = submit(user, name="runner", entrypoint="ticker.py")
    wait_until(lambda: Chain.objects.get(pk=runner.pk).status == "running", timeout=30, message="job to run")
    waiter = submit(user, name="waiter", entrypoint="ticker.py")
    sign_in(tab)

    # The waiting job moves to the group with a free node, and starts there.
    tab.goto(f"{tab.base}/experiments/{waiter.pk}/")
    expect(header_status(tab)).to_have_attribute("data-status", "waiting")
    open_more_actions(tab)
    tab.get_by_label("Move to node group…").select_option("spare")
    tab.get_by_role("button", name="Move", exact=True).click()
    expect(tab.get_by_text("Moved to spare: the job waits in that group's queue now.")).to_be_visible()
    expect(header_status(tab)).to_have_attribute("data-status", re.compile(r"^(waiting|starting|running)$"))
    expect(tab.locator("#chain-live .lead")).to_contain_text("spare")
    wait_until(lambda: Chain.objects.get(pk=waiter.pk).status == "running", timeout=30, message="moved job to run")

    # The running job is stopped and recorded as failed, after the (danger) confirmation.
    tab.goto(f"{tab.base}/experiments/{runner.pk}/")
    expect(header_status(tab)).to_have_attribute("data-status", "running")
    open_more_actions(tab)
    expect(tab.get_by_role("button", name="Move", exact=True)).to_have_count(0)  # a running job is not moved
    tab.get_by_role("button", name="Stop as failed").click()
    expect(tab.locator("#confirm-text")).to_have_text(re.compile(r"^Stop this job and record it as failed\?"))
    expect(tab.locator("#confirm-ok")).to_have_class(re.compile(r"\bbtn-danger-solid\b"))
    confirm(tab)
    expect(header_status(tab)).to_have_attribute("data-status", "failed")
    runner.refresh_from_db()
    assert (runner.status, runner.latest_attempt.stop_reason) == ("failed", "marked_failed")
