"""The researcher's container flow in a real browser: create a container on the containers page,
see it running (live), open JupyterLab through the portal's proxy, run a cell in a notebook, stop
the container, and find the lab closed behind it.

A real JupyterLab is started by the local backend (``live_containers``); the lab opens in a new
tab as the "Open" button says (``target=_blank``)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from apps.containers.choices import ContainerStatus
from apps.containers.models import Container
from tests.browser.conftest import sign_in
from tests.containers.conftest import jupyter, live_containers  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_create_open_run_a_cell_and_stop_a_container(browser_page, live_containers, jupyter, user):  # noqa: F811
    tab = browser_page
    sign_in(tab)
    tab.goto(tab.base + "/containers/")
    expect(tab.get_by_text("No containers yet.", exact=False)).to_be_visible()

    form = tab.locator("form[data-create-container]")
    form.get_by_label("Name", exact=True).fill("lab")
    form.get_by_label("Node group").select_option("jupyter_cpu")
    form.get_by_label("CPU cores").fill("1")
    form.get_by_label("Memory (GiB)").fill("1")
    form.get_by_role("button", name="Create").click()
    # The container's page is where the created container leads: it exists once that is loaded
    # (a click returns before the form's answer; the row may not be there yet).
    tab.wait_for_url(re.compile(r"/containers/\d+/$"))
    c = Container.objects.get(owner=user, name="lab")
    assert tab.url == f"{tab.base}/containers/{c.pk}/"
    # Status arrives live on the container's page (queued → starting → running), no reload.
    expect(tab.locator("[data-container-status]")).to_have_text("Running", timeout=90_000)
    c.refresh_from_db()
    assert c.status == ContainerStatus.RUNNING

    with tab.expect_popup() as popup:
        tab.get_by_role("link", name="Open JupyterLab").click()
    lab = popup.value
    lab.wait_for_load_state()
    assert lab.url == f"{tab.base}/containers/alice/lab/lab"
    # No token anywhere the user sees it: the proxy adds it.
    assert "token" not in lab.url
    notebook = lab.locator(".jp-LauncherCard[data-category='Notebook']").first
    expect(notebook).to_be_visible(timeout=90_000)
    notebook.click()
    editor = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
    expect(editor).to_be_visible(timeout=60_000)
    # The kernel is up and its websocket (through the proxy) reports it idle.
    expect(lab.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=90_000)
    editor.click()
    lab.keyboard.type("6*7")
    lab.keyboard.press("Shift+Enter")
    # The kernel ran the cell over its websocket through the proxy.
    try:
        expect(lab.locator(".jp-OutputArea-output").first).to_have_text("42", timeout=90_000)
    except AssertionError:
        lab.screenshot(path="/tmp/h33-lab.png")
        raise
    lab.close()

    tab.goto(tab.base + "/containers/")
    row = tab.locator("tr[data-container-id]", has_text="lab")
    expect(row.locator("[data-container-status]")).to_have_text("Running")
    row.get_by_role("button", name="Stop").click()
    expect(row.locator("[data-container-status]")).to_have_text("Stopped", timeout=60_000)
    c.refresh_from_db()
    assert (c.status, c.desired) == (ContainerStatus.STOPPED, "stopped")
    expect(row.get_by_role("link", name="Open")).to_have_count(0)
    cookies = {k["name"]: k["value"] for k in tab.context.cookies() if k["name"] == "sessionid"}
    response = httpx.get(f"{tab.base}/containers/alice/lab/lab", cookies=cookies, timeout=30)
    assert response.status_code == 503  # the lab is closed behind it
