"""Browser tests: Playwright drives Debian's chromium against the live embedded platform.

Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
thread with a running loop unless told it is safe (it is here: the tests are synchronous). The
switch is set only while the browser runs: left in the environment, it would leak into other
tests' subprocesses (``check --deploy`` rightly refuses it)."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

# Assertions wait for the page as long as actions do: jobs start through real scheduler and
# launcher passes, which take longer when CI runs two test workers beside the browser.
expect.set_options(timeout=30_000)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def _plain_static_storage(plain_static_storage):
    """Every page here links static files (see ``plain_static_storage``)."""


@pytest.fixture(scope="module")
def chromium():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_page(chromium, platform, capsys):
    """A fresh browser tab (own cookies) on the live platform; JavaScript errors and anything the
    Content-Security-Policy blocked fail the test.

    The server time of every page the tab loads (request sent → first byte) is printed after the
    test, for a person to read; the suite asserts no times (tests/web/test_page_budget.py pins the
    pages' query counts)."""
    context = chromium.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    pages: list[str] = []

    def timed(request) -> None:
        if request.resource_type == "document":
            timing = request.timing
            server_ms = timing["responseStart"] - timing["requestStart"]
            pages.append(f"[page time] {request.url.removeprefix(platform.url)}: {server_ms:.0f} ms")

    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    tab.on("requestfinished", timed)
    tab.base = platform.url  # type: ignore[attr-defined]
    yield tab
    context.close()
    with capsys.disabled():
        print("\n" + "\n".join(pages))
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def load_history(monkeypatch):
    """Put the scheduler's load history in the test's hands: ``load_history(samples, now=...)``
    replaces every ``LoadSample`` with ``samples`` and pins the history charts' clock at ``now``.

    The platform's scheduling loop samples the load of each new minute as the tests run: a minute
    that turned between the test building its samples and the page asking for them made the real
    sample (nothing waiting) the chart's "now" instead of the test's. With the clock pinned the page
    reads up to the test's minute only, and this process takes no more samples (a pass already
    sampling when the rows are replaced waits for the transaction, then yields to the test's row)."""
    from django.db import transaction

    from apps.scheduler import history
    from apps.scheduler.models import LoadSample
    from monitor import selectors

    real = selectors.load_history

    def replace(samples, *, now) -> None:
        def pinned(*, span, now=None):  # the view passes its clock: the test's is used
            return real(span=span, now=at)

        at = now
        monkeypatch.setattr(history.MEMO, "sampled", history.minute_of(now) + 10**6)
        with transaction.atomic():
            LoadSample.objects.all().delete()  # the set-up passes' own samples
            LoadSample.objects.bulk_create(samples)
        monkeypatch.setattr(selectors, "load_history", pinned)

    return replace


def sign_in(tab, username: str = "alice", password: str = "pw-for-tests-1") -> None:  # noqa: S107 - the fixtures' password
    tab.goto(tab.base + "/login/")
    tab.get_by_label("User name").fill(username)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(tab.base + "/")
