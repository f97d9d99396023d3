"""The forum in a real browser: Alice posts with the Markdown editor (server preview, an image
upload, a local draft), Bob replies, Alice quotes Bob, Bob's badge counts the quote live (over the
page's websocket, no reload), Bob opens it from the notifications page and finds the post again
with search."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.factories import NodeFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def new_tab(chromium, platform):
    context = chromium.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.base = platform.url  # type: ignore[attr-defined]
    return context, tab, errors


# A 1×1 PNG: what the upload checks (the first bytes) lets through.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def write(tab, text: str, form: str = "form[data-forum-editor]") -> None:
    """Type into the form's Markdown editor (EasyMDE: the textarea itself is hidden)."""
    tab.locator(f"{form} .CodeMirror").click()
    tab.keyboard.type(text)


EDITOR = "document.querySelector('form[data-forum-editor]').rotaEditor"


def editor_text(tab, form: str = "form[data-forum-editor]") -> str:
    return tab.locator(form).evaluate("f => f.rotaEditor.value()")


def test_post_reply_quote_live_notification_and_search(chromium, platform, browser_page, user, other_user):
    other_user.nickname = "Bobby"
    other_user.save()
    NodeFactory(name="gpu-a01", gpu_model="A100")
    alice = browser_page
    sign_in(alice, "alice")
    alice.get_by_role("link", name="Discuss").first.click()
    alice.get_by_role("link", name="New post").click()
    alice.get_by_label("Title").fill("Ranks hang at NCCL init")
    alice.get_by_label("Tags").fill("nccl")
    write(alice, "All **ranks** hang at init on 4 nodes, gpu-a01 first, see #1. <script>alert(1)</script>")
    if os.environ.get("ROTA_SCREENSHOTS"):
        alice.screenshot(path=os.path.join(os.environ["ROTA_SCREENSHOTS"], "forum-editor.png"), full_page=True)
    # The preview is the server's rendering, sanitised: Markdown applied, the script left as text.
    alice.get_by_role("button", name="Preview").click()
    preview = alice.locator(".editor-preview-active")
    expect(preview.locator("strong")).to_have_text("ranks")
    expect(preview.locator("a.job-ref")).to_have_text("#1")
    expect(preview).to_contain_text("<script>alert(1)</script>")
    expect(preview.locator("script")).to_have_count(0)
    if os.environ.get("ROTA_SCREENSHOTS"):
        alice.screenshot(path=os.path.join(os.environ["ROTA_SCREENSHOTS"], "forum-editor-preview.png"), full_page=True)
    alice.get_by_role("button", name="Preview").click()
    # An image through the editor's upload: the server's URL lands in the text.
    with alice.expect_file_chooser() as chooser:
        alice.get_by_role("button", name="Upload image").click()
    chooser.value.set_files(files=[{"name": "shot.png", "mimeType": "image/png", "buffer": PNG}])
    alice.wait_for_function(f"() => {EDITOR}.value().includes('](/media/discussion/')")
    assert re.search(r"!\[\]\(/media/discussion/\d{4}/\d{2}/[\w-]+\.png\)", editor_text(alice))
    # A draft survives a reload of the page, and is gone once the post is sent.
    alice.wait_for_function(
        "() => Object.keys(localStorage).some(k => k.startsWith('smde_rota-draft:')"
        " && localStorage.getItem(k).includes('](/media/discussion/'))"
    )
    alice.reload()
    alice.wait_for_function(f"() => {EDITOR} && {EDITOR}.value().includes('All **ranks** hang at init')")
    alice.get_by_label("Title").fill("Ranks hang at NCCL init")
    alice.get_by_label("Tags").fill("nccl")
    alice.get_by_role("button", name="Publish").click()
    expect(alice.locator("h1.post-heading")).to_have_text("Ranks hang at NCCL init")
    expect(alice.locator(".md strong")).to_have_text("ranks")
    expect(alice.locator(".md img")).to_have_count(1)
    expect(alice.locator(".md a.node-ref")).to_have_text("gpu-a01")
    assert alice.evaluate("Object.keys(localStorage).filter(k => k.startsWith('smde_rota-draft:')).length") == 0
    post_url = alice.url

    bob_context, bob, bob_errors = new_tab(chromium, platform)
    try:
        sign_in(bob, "bob")
        bob.goto(post_url)
        write(bob, "Try NCCL_DEBUG=INFO first.")
        bob.get_by_role("button", name="Post reply").click()
        expect(bob.locator("#floor-1")).to_contain_text("Try NCCL_DEBUG=INFO first.")
        bob.goto(post_url)
        assert editor_text(bob) == ""  # sent, so no draft comes back
        bob.goto(bob.base + "/discuss/")
        badge = bob.locator("[data-unread-count]")
        expect(badge).to_be_hidden()
        expect(bob.locator("[data-realtime-status]")).to_have_attribute("data-state", "live")

        alice.reload()
        alice.locator("#floor-1").get_by_role("link", name="Quote").click()
        expect(alice.locator("#reply-form .callout-info")).to_contain_text("Quoting Bobby, #1")
        write(alice, "That showed a bad IB port, thanks!")
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
        # The node's name in the post leads to the node and the posts about it.
        bob.goto(post_url)
        bob.locator(".md a.node-ref").click()
        expect(bob.locator("h1")).to_contain_text("gpu-a01")
        expect(bob.locator(".search-results")).to_contain_text("Ranks hang at NCCL init")
        if os.environ.get("ROTA_SCREENSHOTS"):
            bob.screenshot(path=os.path.join(os.environ["ROTA_SCREENSHOTS"], "forum-node.png"), full_page=True)
        assert not bob_errors, bob_errors
    finally:
        bob_context.close()
