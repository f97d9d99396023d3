"""htmx on the server (django-htmx, apps/core/htmx.py): one URL answers htmx with a partial and a
plain request with the whole page, says so in ``Vary``, and speaks to the page through HX-*
headers set by django-htmx's helpers."""

from __future__ import annotations

import json

import pytest

from apps.accounts import services as account_services
from tests.factories import UserFactory
from tests.web.conftest import HTMX


def vary(response) -> set[str]:
    return {part.strip() for part in response.get("Vary", "").split(",") if part.strip()}


def test_dashboard_is_the_live_region_for_htmx_and_the_page_otherwise(cluster, submit, user, page):
    submit(user, name="live-one")
    partial = page.get("/", **HTMX)
    whole = page.get("/")
    assert partial.status_code == whole.status_code == 200
    assert partial.content.decode().lstrip().startswith('<div id="dash-live"')
    assert "<html" not in partial.content.decode() and "live-one" in partial.content.decode()
    assert "<html" in whole.content.decode() and 'id="dash-live"' in whole.content.decode()
    assert {"HX-Request", "Cookie"} <= vary(partial) and vary(partial) == vary(whole)


def test_job_page_is_its_live_part_for_htmx_and_the_page_otherwise(cluster, submit, user, page):
    chain = submit(user, name="detail-one")
    partial = page.get(f"/experiments/{chain.pk}/", **HTMX)
    whole = page.get(f"/experiments/{chain.pk}/")
    assert partial.content.decode().lstrip().startswith('<div id="chain-live"')
    assert "<html" not in partial.content.decode()
    assert "<html" in whole.content.decode()
    assert "HX-Request" in vary(partial) and "HX-Request" in vary(whole)


def test_list_answers_the_results_only_to_htmx_aimed_at_them(cluster, submit, user, page):
    submit(user, name="alpha")
    results = page.get("/experiments/?name=alp", HTTP_HX_TARGET="chain-results", **HTMX)
    elsewhere = page.get("/experiments/?name=alp", HTTP_HX_TARGET="main", **HTMX)
    whole = page.get("/experiments/?name=alp")
    assert results.content.decode().lstrip().startswith('<div id="chain-results"')
    assert "<html" not in results.content.decode()
    assert "<html" in elsewhere.content.decode() and "<html" in whole.content.decode()
    for response in (results, elsewhere, whole):
        assert {"HX-Request", "HX-Target"} <= vary(response)


def test_a_partial_carries_the_pending_messages_as_out_of_band_toasts(cluster, submit, user, page):
    chain = submit(user, name="toasted")
    response = page.post(f"/experiments/{chain.pk}/suspend/", **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="chain-live"')
    assert '<div id="toasts" hx-swap-oob="beforeend">' in body
    assert "Suspending the job" in body


def test_batch_over_htmx_triggers_the_list_refresh_event(cluster, submit, user, page):
    chain = submit(user, name="one")
    response = page.post("/experiments/batch/", {"action": "suspend", "ids": [chain.pk]}, **HTMX)
    plain = page.post("/experiments/batch/", {"action": "resume", "ids": [chain.pk]})
    assert response.status_code == 200 and json.loads(response["HX-Trigger"]) == {"rota:list-changed": {}}
    assert plain.status_code == 302 and "HX-Trigger" not in plain


def test_theme_over_htmx_is_a_bare_204_and_a_redirect_as_a_plain_form(page):
    quiet = page.post("/theme/", {"theme": "dark"}, **HTMX)
    plain = page.post("/theme/", {"theme": "light", "next": "/experiments/"})
    assert quiet.status_code == 204 and quiet.content == b"" and quiet.cookies["rota_theme"].value == "dark"
    assert plain.status_code == 302 and plain["Location"] == "/experiments/"
    assert plain.cookies["rota_theme"].value == "light"


@pytest.mark.parametrize(
    ("url", "region"), [("/monitor/nodes/", "nodes-live"), ("/monitor/scheduler/", "scheduler-live")]
)
def test_monitor_live_regions_vary_on_htmx(cluster, browser_for, url, region):
    account_services.ensure_admin_groups()
    admin = browser_for(UserFactory(username="h-root", groups=["root"]))
    partial = admin.get(url, **HTMX)
    whole = admin.get(url)
    assert partial.status_code == whole.status_code == 200
    assert f'id="{region}"' in partial.content.decode() and "<html" not in partial.content.decode()
    assert "<html" in whole.content.decode()
    assert "HX-Request" in vary(partial) and "HX-Request" in vary(whole)
