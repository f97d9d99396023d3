"""The forum in a real browser: Alice posts, Bob replies, Alice quotes Bob, Bob's badge counts the
quote live (over the page's websocket, no reload), Bob opens it from the notifications page and
finds the post again with search."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def new_tab(chromium, platform):
    context = chromium.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.base = platform.url  # type: ignore[attr-defined]
    return context, tab, errors


def test_post_reply_quote_live_notification_and_search(chromium, platform, browser_page, user, other_user):
    other_user.nickname = "Bobby"
    other_user.save()
    alice = browser_page
    sign_in(alice, "alice")
    alice.get_by_role("link", name="Discuss").first.click()
    alice.get_by_role("link", name="New post").click()
    alice.get_by_label("Title").fill("Ranks hang at NCCL init")
    alice.get_by_label("Tags").fill("nccl")
    alice.get_by_label("Text").fill("All **ranks** hang at init on 4 nodes, see #1.")
    alice.get_by_role("button", name="Publish").click()
    expect(alice.locator("h1.post-heading")).to_have_text("Ranks hang at NCCL init")
    expect(alice.locator(".md strong")).to_have_text("ranks")
    post_url = alice.url

    bob_context, bob, bob_errors = new_tab(chromium, platform)
    try:
        sign_in(bob, "bob")
        bob.goto(post_url)
        bob.get_by_label("Your reply").fill("Try NCCL_DEBUG=INFO first.")
        bob.get_by_role("button", name="Post reply").click()
        expect(bob.locator("#floor-1")).to_contain_text("Try NCCL_DEBUG=INFO first.")
        bob.goto(post_url)
        expect(bob.get_by_role("button", name="Restore your draft")).to_have_count(0)  # sent, so no draft
        bob.goto(bob.base + "/discuss/")
        badge = bob.locator("[data-unread-count]")
        expect(badge).to_be_hidden()
        expect(bob.locator("[data-realtime-status]")).to_have_attribute("data-state", "live")

        alice.reload()
        alice.locator("#floor-1").get_by_role("link", name="Quote").click()
        expect(alice.locator("#reply-form .callout-info")).to_contain_text("Quoting Bobby, #1")
        alice.get_by_label("Your reply").fill("That showed a bad IB port, thanks!")
        alice.get_by_role("button", name="Post reply").click()
        expect(alice.locator("#floor-2 .quote")).to_contain_text("Try NCCL_DEBUG=INFO first.")

        # Bob's page was not reloaded: the count arrived over the websocket.
        expect(badge).to_have_text("1")
        expect(badge).to_be_visible()
        bob.locator("[data-notifications-badge]").click()
        bob.get_by_role("button", name="Alice quoted your reply in “Ranks hang at NCCL init”").click()
        expect(bob.locator("#floor-2")).to_contain_text("bad IB port")
        expect(bob.locator("[data-unread-count]")).to_be_hidden()

        bob.get_by_role("link", name="Discuss").first.click()
        bob.get_by_placeholder("Search the forum").fill("nccl hang")
        bob.get_by_placeholder("Search the forum").press("Enter")
        expect(bob.locator(".search-results .post-title mark")).to_have_text(["hang", "NCCL"])
        expect(bob.locator(".search-results")).to_contain_text("Ranks hang at NCCL init")
        if os.environ.get("ROTA_SCREENSHOTS"):
            bob.screenshot(path=os.path.join(os.environ["ROTA_SCREENSHOTS"], "forum-search.png"), full_page=True)
            alice.screenshot(path=os.path.join(os.environ["ROTA_SCREENSHOTS"], "forum-post.png"), full_page=True)
        assert not bob_errors, bob_errors
    finally:
        bob_context.close()
