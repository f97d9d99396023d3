"""The containers' Ingress, Rota's side (``apps.containers.ingress``): nginx's auth check answers 200
with the run's token only for the owner and admins holding the container's ticket, and the sign-in
hands a ticket to the containers host without the portal's session ever going there."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import Client

from apps.containers import ingress
from apps.containers.choices import ContainerStatus
from apps.containers.models import Container
from apps.containers.tokens import container_token
from tests.permissions import db_state

HOST = "containers.rota.example"
LAB = f"https://{HOST}/containers/alice/lab/lab?reset"


@pytest.fixture(autouse=True)
def containers_host(settings, plain_static_storage):
    settings.ROTA_BACKEND = "kubernetes"
    settings.ROTA_PUBLIC_URL = "https://rota.example"
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "INGRESS_HOST": HOST}
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


@pytest.fixture
def lab(jupyter, user) -> Container:
    return Container.objects.create(
        owner=user,
        name="lab",
        node_group=jupyter.group,
        status=ContainerStatus.RUNNING,
        run=4,
        endpoints={"jupyter": "10.1.2.3:8888"},
    )


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ticket_for(user, rd: str = LAB) -> tuple[str, str]:
    """The whole sign-in as a browser goes through it: (ticket cookie, where it was sent back to)."""
    answer = signed_in(user).get("/containers/ticket/", {"rd": rd})
    assert answer.status_code == 302
    enter = urlsplit(answer["Location"])
    assert (enter.scheme, enter.netloc, enter.path) == ("https", HOST, "/containers/enter/")
    browser = Client()  # on the containers host: no portal session
    entered = browser.get(enter.path, {"t": parse_qs(enter.query)["t"][0]}, HTTP_HOST=HOST, secure=True)
    assert entered.status_code == 302
    cookie = entered.cookies[ingress.TICKET_COOKIE]
    assert (cookie["path"], cookie["httponly"], cookie["secure"], cookie["samesite"]) == (
        "/containers/alice/lab/",
        True,
        True,
        "Lax",
    )
    assert entered["Referrer-Policy"] == "no-referrer"
    return cookie.value, entered["Location"]


def auth(ticket: str | None, url: str = LAB):
    client = Client()
    if ticket is not None:
        client.cookies[ingress.TICKET_COOKIE] = ticket
    return client.get("/containers/auth/", HTTP_X_ORIGINAL_URL=url)


def test_the_owner_signs_in_once_and_passes_with_the_runs_token_for_nginx(lab, user):
    ticket, back = ticket_for(user)
    assert back == "/containers/alice/lab/lab?reset"
    answer = auth(ticket)
    assert answer.status_code == 200
    assert answer["Authorization"] == f"token {container_token(lab.pk, 4)}"
    assert "no-store" in answer["Cache-Control"]
    assert auth(ticket, f"https://{HOST}/containers/alice/lab/api/kernels/1/channels").status_code == 200


def test_an_admin_passes_as_for_the_proxy(lab, admin_user):
    answer = auth(ticket_for(admin_user)[0])
    assert (answer.status_code, answer["Authorization"]) == (200, f"token {container_token(lab.pk, 4)}")


def test_anonymous_forged_expired_or_misplaced_tickets_are_401(lab, user, jupyter, monkeypatch):
    ticket = ticket_for(user)[0]
    other = Container.objects.create(owner=user, name="other", node_group=jupyter.group, status="running", run=1)
    assert other.pk
    for answer in (
        auth(None),
        auth("forged"),
        auth(ticket[:-2] + "xx"),
        auth(ticket, f"https://{HOST}/containers/alice/other/lab"),  # a ticket names one container
        auth(ticket, f"https://{HOST}/elsewhere"),
    ):
        assert answer.status_code == 401
        assert "Authorization" not in answer
    monkeypatch.setattr(ingress, "TICKET_MAX_AGE", -1)
    assert auth(ticket).status_code == 401


def test_another_user_holding_a_ticket_is_refused_403(lab, other_user):
    # bob cannot sign in to alice's container; a ticket signed for him (a lost right) is refused.
    assert signed_in(other_user).get("/containers/ticket/", {"rd": LAB}).status_code == 404
    theirs = signing.dumps(
        {"u": other_user.pk, "h": ingress._user_digest(other_user), "c": "alice/lab"}, salt=ingress._TICKET_SALT
    )
    answer = auth(theirs)
    assert answer.status_code == 403
    assert "Authorization" not in answer


def test_a_container_not_running_is_refused_403(lab, user):
    ticket = ticket_for(user)[0]
    Container.objects.filter(pk=lab.pk).update(status=ContainerStatus.STOPPED)
    answer = auth(ticket)
    assert answer.status_code == 403
    assert "Authorization" not in answer


def test_a_new_password_or_a_deactivated_account_ends_the_ticket(lab, user):
    ticket = ticket_for(user)[0]
    user.set_password("another-password-123")
    user.save()
    assert auth(ticket).status_code == 401
    fresh = ticket_for(user)[0]
    user.is_active = False
    user.save()
    assert auth(fresh).status_code == 401


def test_sign_in_needs_the_session_and_an_address_of_a_container_on_the_containers_host(lab, user):
    anonymous = Client().get("/containers/ticket/", {"rd": LAB})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    client = signed_in(user)
    for rd in (
        "https://rota.example/containers/alice/lab/lab",  # the portal's own host
        "https://evil.example/containers/alice/lab/lab",
        f"https://{HOST}/admin/",
        f"https://{HOST}/containers/alice/nope/lab",
        "",
    ):
        assert client.get("/containers/ticket/", {"rd": rd}).status_code == 404


def test_the_hand_off_is_only_taken_on_the_containers_host_fresh_and_untouched(lab, user, monkeypatch):
    client = signed_in(user)
    before = db_state()
    answer = client.get("/containers/ticket/", {"rd": LAB})
    handoff = parse_qs(urlsplit(answer["Location"]).query)["t"][0]
    on_portal = Client().get("/containers/enter/", {"t": handoff})  # the portal's host: not served
    assert on_portal.status_code == 404 and ingress.TICKET_COOKIE not in on_portal.cookies
    forged = Client().get("/containers/enter/", {"t": handoff[:-2] + "xx"}, HTTP_HOST=HOST)
    assert forged.status_code == 403 and ingress.TICKET_COOKIE not in forged.cookies
    assert "invalid or has expired" in forged.content.decode()
    assert auth(handoff).status_code == 401  # a hand-off is not a ticket
    monkeypatch.setattr(ingress, "HANDOFF_MAX_AGE", -1)
    assert Client().get("/containers/enter/", {"t": handoff}, HTTP_HOST=HOST).status_code == 403
    assert db_state() == before


def test_without_a_containers_host_the_ingress_pages_are_404(lab, user, settings):
    settings.ROTA_CONTAINERS = {**settings.ROTA_CONTAINERS, "INGRESS_HOST": ""}
    assert signed_in(user).get("/containers/ticket/", {"rd": LAB}).status_code == 404
    assert Client().get("/containers/enter/", {"t": "x"}, HTTP_HOST=HOST).status_code == 404


def test_pages_and_the_api_open_containers_on_the_containers_host(lab, user):
    page = signed_in(user).get(f"/containers/{lab.pk}/")
    assert f'href="https://{HOST}/containers/alice/lab/lab"' in page.content.decode()
    listing = signed_in(user).get("/containers/")
    assert f'href="https://{HOST}/containers/alice/lab/lab"' in listing.content.decode()
