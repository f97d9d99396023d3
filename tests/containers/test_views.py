"""The containers pages: permissions, the create form with quota errors, actions."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.containers import services
from apps.containers.models import Container
from tests.factories import UserFactory
from tests.permissions import db_state


@pytest.fixture
def pages(jupyter, plain_static_storage):
    from apps.accounts import services as account_services

    account_services.ensure_admin_groups()
    owner = UserFactory(username="owner")
    other = UserFactory(username="other")
    admin = UserFactory(username="boss", groups=["root"])
    c = services.container_create(actor=owner, name="lab", node_group=jupyter.group, cpu=1, memory_gib=1, start=False)

    def client(user):
        cl = Client()
        if user is not None:
            cl.force_login(user)
        return cl

    return {"c": c, "owner": client(owner), "other": client(other), "admin": client(admin), "anon": client(None)}


def test_anonymous_is_sent_to_sign_in(pages):
    for url in ("/containers/", f"/containers/{pages['c'].pk}/"):
        response = pages["anon"].get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    before = db_state()
    assert pages["anon"].post(f"/containers/{pages['c'].pk}/", {"action": "start"}).status_code == 302
    assert db_state() == before


def test_another_user_gets_404_and_nothing_changes(pages):
    before = db_state()
    url = f"/containers/{pages['c'].pk}/"
    assert pages["other"].get(url).status_code == 404
    for action in ("start", "delete", "edit", "keep", "restart"):
        assert pages["other"].post(url, {"action": action, "cpu": 2, "memory_gib": 1, "gpus": 0}).status_code == 404
    assert db_state() == before
    assert f"/containers/{pages['c'].pk}/" not in pages["other"].get("/containers/").content.decode()


def test_owner_and_admin_see_the_pages(pages):
    page = pages["owner"].get("/containers/").content.decode()
    assert "lab" in page and "1/3" in page  # quota used/total
    detail = pages["owner"].get(f"/containers/{pages['c'].pk}/")
    assert detail.status_code == 200 and "owner/lab" in detail.content.decode()
    assert pages["admin"].get(f"/containers/{pages['c'].pk}/").status_code == 200
    assert "owner" in pages["admin"].get("/containers/?all=1").content.decode()


def test_create_from_the_form_and_quota_errors_show_on_the_form(pages, jupyter):
    response = pages["owner"].post(
        "/containers/",
        {
            "name": "web",
            "node_group": "jupyter_cpu",
            "cpu": 2,
            "memory_gib": 2,
            "gpus": 0,
            "services": "board:6006=python -m http.server 6006",
        },
    )
    assert response.status_code == 302
    made = Container.objects.get(name="web")
    assert (made.cpu, made.desired) == (2, "stopped")
    assert list(made.services.values_list("name", "port")) == [("board", 6006)]
    pages["owner"].post(
        "/containers/", {"name": "x3", "node_group": "jupyter_cpu", "cpu": 1, "memory_gib": 1, "gpus": 0}
    )
    before = db_state()
    refused = pages["owner"].post(
        "/containers/", {"name": "x4", "node_group": "jupyter_cpu", "cpu": 1, "memory_gib": 1, "gpus": 0}
    )
    assert refused.status_code == 400
    assert "Container quota exceeded in jupyter_cpu" in refused.content.decode()
    assert db_state() == before
    bad = pages["owner"].post(
        "/containers/",
        {"name": "y", "node_group": "jupyter_cpu", "cpu": 1, "memory_gib": 1, "gpus": 0, "services": "nonsense"},
    )
    assert bad.status_code == 400 and "name:port=command" in bad.content.decode()


def test_actions_from_the_page(pages, task_log):
    url = f"/containers/{pages['c'].pk}/"
    assert pages["owner"].post(url, {"action": "start"}).status_code == 302
    assert Container.objects.get(pk=pages["c"].pk).desired == "running"
    assert pages["owner"].post(url, {"action": "stop"}).status_code == 302
    assert Container.objects.get(pk=pages["c"].pk).desired == "stopped"
    edited = pages["owner"].post(url, {"action": "edit", "cpu": 2, "memory_gib": 2, "gpus": 0})
    assert edited.status_code == 302 and Container.objects.get(pk=pages["c"].pk).cpu == 2
    assert pages["owner"].post(url, {"action": "delete"}).status_code == 302
    assert Container.objects.get(pk=pages["c"].pk).deleted_at is not None
    assert pages["owner"].get(url).status_code == 404


def test_pages_in_chinese(pages):
    response = pages["owner"].get("/containers/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "我的容器" in response.content.decode()


def test_an_action_from_the_list_comes_back_to_the_list_and_nowhere_else(pages, task_log):
    url = f"/containers/{pages['c'].pk}/"
    assert pages["owner"].post(url, {"action": "start", "back": "list"})["Location"] == "/containers/"
    assert pages["admin"].post(url, {"action": "stop", "back": "list-all"})["Location"] == "/containers/?all=1"
    # Anything else is the container's page: the form names a place, never a URL.
    assert pages["owner"].post(url, {"action": "start", "back": "https://evil.example/"})["Location"] == url
    # Somebody else's container: 404 wherever it was sent from, and nothing changed.
    before = db_state()
    refused = pages["other"].post(url, {"action": "stop", "back": "list"})
    assert refused.status_code == 404 and db_state() == before


def test_live_refreshes_answer_with_the_region_only(pages):
    c = pages["c"]
    headers = {"HX-Request": "true"}
    table = pages["owner"].get("/containers/", headers=headers)
    body = table.content.decode()
    assert table.status_code == 200 and body.startswith('<div id="containers-live">')
    assert f'data-container-id="{c.pk}"' in body and 'data-container-status="stopped"' in body
    assert "<html" not in body and 'name="back" value="list"' in body
    assert "HX-Request" in table["Vary"]
    mine = pages["admin"].get("/containers/", headers=headers).content.decode()
    everyone = pages["admin"].get("/containers/?all=1", headers=headers).content.decode()
    assert f'data-container-id="{c.pk}"' not in mine and f'data-container-id="{c.pk}"' in everyone
    assert 'name="back" value="list-all"' in everyone
    detail = pages["owner"].get(f"/containers/{c.pk}/", headers=headers)
    body = detail.content.decode()
    assert detail.status_code == 200 and body.startswith('<div id="container-live">')
    assert 'data-container-status="stopped"' in body and "data-container-log" not in body
    # The same refresh of somebody else's container is a 404, like the page.
    assert pages["other"].get(f"/containers/{c.pk}/", headers=headers).status_code == 404
    # The whole page carries the regions, their triggers and the log outside them.
    page = pages["owner"].get(f"/containers/{c.pk}/").content.decode()
    assert 'hx-target="#container-live"' in page and "rota:container.status from:body" in page
    assert page.index('id="container-live"') < page.index("data-container-log")
