"""The permission suite of every portal page: anonymous users are sent to sign in, another user's
job (or token) is a 404 that changes nothing, the owner and admins are served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.accounts import services as account_services
from tests.factories import UserFactory
from tests.permissions import db_state
from tests.web.conftest import HTMX


@dataclass
class Page:
    name: str
    method: str
    url: Callable[[dict[str, Any]], str]
    data: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    owner_scoped: bool = False  # another user's object: 404, nothing changes
    ok_status: int = 200
    public: bool = False  # reachable without signing in
    admin_status: int | None = None  # default: ok_status
    headers: dict[str, str] = field(default_factory=dict)

    def call(self, client: Any, ctx: dict[str, Any]) -> Any:
        method = getattr(client, self.method.lower())
        if self.data is None:
            return method(self.url(ctx), **self.headers)
        return method(self.url(ctx), self.data(ctx), **self.headers)


def chain_url(suffix: str = "") -> Callable[[dict[str, Any]], str]:
    return lambda c: f"/experiments/{c['chain'].pk}/{suffix}"


def submission(ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "perm-new",
        "workspace": str(ctx["workspace"]),
        "entrypoint": "train.py",
        "kind": "python",
        "group": "training",
        "nodes": "1",
        "priority": "10",
        "environment": "default",
    }


PAGES = [
    Page("dashboard", "GET", lambda c: "/"),
    Page("admin-entry", "GET", lambda c: "/admin/", ok_status=302),
    Page("dashboard-live", "GET", lambda c: "/", headers=HTMX),
    Page("experiments", "GET", lambda c: "/experiments/"),
    Page(
        "experiments-results",
        "GET",
        lambda c: "/experiments/?status=active",
        headers={**HTMX, "HTTP_HX_TARGET": "chain-results"},
    ),
    Page("experiment", "GET", chain_url(), owner_scoped=True),
    Page(
        "experiment-live", "GET", lambda c: f"/experiments/{c['chain'].pk}/?view=logs", owner_scoped=True, headers=HTMX
    ),
    Page("experiment-row", "GET", chain_url("row/"), owner_scoped=True, headers=HTMX),
    Page("logs", "GET", chain_url("logs/"), owner_scoped=True),
    Page("log-read", "GET", lambda c: f"/experiments/{c['chain'].pk}/logs/read/?mode=tail", owner_scoped=True),
    Page("stop", "POST", chain_url("stop/"), lambda c: {}, owner_scoped=True, ok_status=302),
    Page("suspend", "POST", chain_url("suspend/"), lambda c: {}, owner_scoped=True, ok_status=302),
    Page("resume", "POST", chain_url("resume/"), lambda c: {}, owner_scoped=True, ok_status=302),
    Page("stop-succeeded", "POST", chain_url("stop/succeeded/"), lambda c: {}, owner_scoped=True, ok_status=302),
    Page("stop-failed", "POST", chain_url("stop/failed/"), lambda c: {}, owner_scoped=True, ok_status=302),
    Page("move", "POST", chain_url("move/"), lambda c: {"group": "training"}, owner_scoped=True, ok_status=302),
    Page("priority", "POST", chain_url("priority/"), lambda c: {"priority": "30"}, owner_scoped=True, ok_status=302),
    Page("front", "POST", chain_url("front/"), lambda c: {}, owner_scoped=True, ok_status=302),
    Page("tag", "POST", chain_url("tags/"), lambda c: {"tag": "fresh"}, owner_scoped=True, ok_status=302),
    Page("untag", "POST", chain_url("tags/remove/"), lambda c: {"tag": "keep"}, owner_scoped=True, ok_status=302),
    Page("star", "POST", chain_url("star/"), lambda c: {"starred": "1"}, owner_scoped=True, ok_status=302),
    Page("share", "POST", chain_url("share/"), lambda c: {"shared": "0"}, owner_scoped=True, ok_status=302),
    Page("submit", "GET", lambda c: "/submit/"),
    Page("resubmit", "GET", lambda c: f"/submit/?from={c['chain'].pk}", owner_scoped=True),
    Page("submit-post", "POST", lambda c: "/submit/", submission, ok_status=302),
    Page("submit-preview", "POST", lambda c: "/submit/preview/", submission),
    Page("profile", "GET", lambda c: "/account/"),
    Page("tokens", "GET", lambda c: "/account/tokens/"),
    Page(
        "token-create", "POST", lambda c: "/account/tokens/", lambda c: {"name": "n", "scope": "all", "expires": "30"}
    ),
    Page(
        "token-revoke",
        "POST",
        lambda c: f"/account/tokens/{c['token'].pk}/revoke/",
        lambda c: {},
        owner_scoped=True,
        ok_status=302,
        admin_status=404,  # the tokens page is for one's own tokens; admins revoke others' in /monitor
    ),
    Page("settings", "GET", lambda c: "/account/settings/"),
    Page(
        "settings-post",
        "POST",
        lambda c: "/account/settings/",
        lambda c: {"language": "en", "theme": "dark"},
        ok_status=302,
    ),
    Page("theme", "POST", lambda c: "/theme/", lambda c: {"theme": "dark", "next": "/"}, ok_status=302, public=True),
    Page(
        "language",
        "POST",
        lambda c: "/language/",
        lambda c: {"language": "en", "next": "/"},
        ok_status=302,
        public=True,
    ),
]
IDS = [p.name for p in PAGES]


@pytest.fixture
def pctx(cluster, submit, workspace, browser_for):
    owner = UserFactory(username="powner")
    intruder = UserFactory(username="pintruder")
    admin = UserFactory(username="padmin", groups=["root"])
    chain = submit(owner, name="perm-chain", tags=["keep"])
    token = account_services.token_create(actor=owner, name="owner-token").token
    return {
        "chain": chain,
        "token": token,
        "workspace": workspace,
        "anonymous": browser_for(None),
        "owner": browser_for(owner),
        "intruder": browser_for(intruder),
        "admin": browser_for(admin),
    }


@pytest.mark.parametrize("page", [p for p in PAGES if not p.public], ids=[p.name for p in PAGES if not p.public])
def test_anonymous_is_sent_to_sign_in_and_nothing_changes(pctx, page):
    before = db_state()
    response = page.call(pctx["anonymous"], pctx)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")
    assert db_state() == before


@pytest.mark.parametrize("page", [p for p in PAGES if p.owner_scoped], ids=[p.name for p in PAGES if p.owner_scoped])
def test_another_users_object_is_404_and_nothing_changes(pctx, page):
    before = db_state()
    response = page.call(pctx["intruder"], pctx)
    assert response.status_code == 404, response.content[:300]
    assert db_state() == before


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_owner_is_served(pctx, page):
    response = page.call(pctx["owner"], pctx)
    assert response.status_code == page.ok_status, response.content[:500]


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_admin_is_served(pctx, page):
    response = page.call(pctx["admin"], pctx)
    expected = page.admin_status if page.admin_status is not None else page.ok_status
    assert response.status_code == expected, response.content[:500]


def test_another_users_jobs_are_not_listed(pctx):
    for url in ("/", "/experiments/", "/experiments/?scope=all"):
        response = pctx["intruder"].get(url)
        assert response.status_code == 200
        assert b"perm-chain" not in response.content


def test_admin_sees_everyones_jobs_when_asked(pctx):
    assert b"perm-chain" not in pctx["admin"].get("/experiments/").content  # their own by default
    assert b"perm-chain" in pctx["admin"].get("/experiments/?scope=all").content


def test_batch_on_another_users_job_changes_nothing(pctx):
    before = db_state()
    response = pctx["intruder"].post(
        "/experiments/batch/", {"action": "stop", "ids": [pctx["chain"].pk], "next": "/experiments/"}, follow=True
    )
    assert response.status_code == 200
    assert db_state() == before
    assert b"1 job was not found." in response.content


def test_every_portal_url_is_in_the_suite():
    """A new page must be added to PAGES, with its permission expectations."""
    from types import SimpleNamespace

    from django.urls import get_resolver, resolve

    web = next(p for p in get_resolver().url_patterns if getattr(p, "app_name", None) == "web")
    routes = {str(p.pattern) for p in web.url_patterns}
    fake = {"chain": SimpleNamespace(pk=1), "token": SimpleNamespace(pk=1)}
    covered = {resolve(page.url(fake).split("?")[0]).route for page in PAGES}
    # Covered by their own tests in test_views.py: signing in and out, batch actions.
    covered |= {"login/", "logout/", "experiments/batch/"}
    assert routes == covered
