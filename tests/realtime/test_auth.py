"""Who may open a websocket: session cookie (browser, Origin checked) or token (header or
subprotocol, never the URL); refusals happen before the handshake, so nothing is sent."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from tests.realtime.conftest import communicator

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("path", ["/ws/events/", "/ws/logs/1/0/"])
async def test_anonymous_is_refused(ws_app, path):
    comm = communicator(ws_app, path)
    connected, code = await comm.connect()
    assert (connected, code) == (False, 4401)
    assert await comm.receive_nothing()


@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/logs/x/0/", "/api/v1/me/"])
async def test_an_unknown_socket_path_is_refused_not_an_error(ws_app, user, token_for, path):
    comm = communicator(ws_app, path, token=await database_sync_to_async(token_for)(user))
    assert await comm.connect() == (False, 4404)
    assert await comm.receive_nothing()


async def test_token_in_the_subprotocol_is_accepted_and_never_echoed(ws_app, user, token_for):
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(ws_app, "/ws/events/", token=token, origin=None)
    connected, subprotocol = await comm.connect()
    assert (connected, subprotocol) == (True, "rota.v1")
    await comm.send_json_to({"action": "ping"})
    assert await comm.receive_json_from() == {"type": "pong"}
    await comm.disconnect()


async def test_token_in_the_authorization_header_is_accepted(ws_app, user, token_for):
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(ws_app, "/ws/events/", token=token, token_in="header", origin=None)
    connected, subprotocol = await comm.connect()
    assert (connected, subprotocol) == (True, None)
    await comm.disconnect()


async def test_token_in_the_query_string_is_ignored(ws_app, user, token_for):
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(ws_app, f"/ws/events/?token={token}", origin=None)
    assert await comm.connect() == (False, 4401)


async def test_job_tokens_and_bad_tokens_are_refused(ws_app, user, token_for):
    from apps.accounts.services import token_create_for_attempt

    job_token = (await database_sync_to_async(token_create_for_attempt)(user=user, attempt_id=1)).raw
    token = await database_sync_to_async(token_for)(user)
    for raw in (job_token, token[:-3] + "xyz", "not-a-token"):
        comm = communicator(ws_app, "/ws/events/", token=raw, origin=None)
        assert await comm.connect() == (False, 4401), raw


async def test_session_cookie_works_from_an_allowed_origin(ws_app, user, cookie_for):
    cookie = await database_sync_to_async(cookie_for)(user)
    comm = communicator(ws_app, "/ws/events/", cookie=cookie, subprotocols=["rota.v1"])
    assert await comm.connect() == (True, "rota.v1")
    await comm.disconnect()


async def test_session_cookie_is_refused_from_another_origin(ws_app, user, cookie_for):
    cookie = await database_sync_to_async(cookie_for)(user)
    comm = communicator(ws_app, "/ws/events/", cookie=cookie, origin=b"https://evil.example")
    connected, _ = await comm.connect()
    assert connected is False
    assert await comm.receive_nothing()


async def test_session_cookie_without_origin_does_not_authenticate(ws_app, user, cookie_for):
    """No Origin means not a browser: only a token counts, so a stolen cookie alone is not enough."""
    cookie = await database_sync_to_async(cookie_for)(user)
    comm = communicator(ws_app, "/ws/events/", cookie=cookie, origin=None)
    assert await comm.connect() == (False, 4401)


async def test_logs_of_another_users_chain_are_refused_before_anything_is_sent(
    ws_app, cluster, submit, user, other_user, token_for, log_store
):
    chain = await database_sync_to_async(submit)(user)
    attempt_id = await database_sync_to_async(lambda: chain.attempts.get().pk)()
    with log_store.writer(str(chain.pk), attempt_id, 0) as w:
        w.write_line("secret training output")
    token = await database_sync_to_async(token_for)(other_user)
    for path in (f"/ws/logs/{chain.pk}/0/", f"/ws/logs/{chain.pk + 1000}/0/", "/ws/logs/9999999999999999999999/0/"):
        comm = communicator(ws_app, path, token=token)
        assert await comm.connect() == (False, 4404), path
        assert await comm.receive_nothing()
    # The owner may, but not a rank the job does not have.
    owner = await database_sync_to_async(token_for)(user)
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/1/", token=owner)
    assert await comm.connect() == (False, 4404)
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=owner)
    assert (await comm.connect())[0] is True
    await comm.disconnect()


# --- credentials that stop holding while the socket is open -------------------------------------


@pytest.fixture
def quick_recheck(settings):
    settings.ROTA_REALTIME = {"AUTH_RECHECK_SECONDS": 0.05, "STATE_POLL_SECONDS": 0.1}


async def closed_as_unauthenticated(comm, timeout: float = 5.0) -> str:
    """The error message sent before the 4401 close."""
    message = await comm.receive_json_from(timeout=timeout)
    assert (message["type"], message["code"]) == ("error", "unauthenticated"), message
    assert await comm.receive_output(timeout=timeout) == {"type": "websocket.close", "code": 4401}
    return message["message"]


@pytest.mark.parametrize("path", ["/ws/events/", "/ws/logs/{chain}/0/"])
async def test_a_revoked_token_loses_its_open_socket(ws_app, quick_recheck, cluster, submit, user, path):
    from apps.accounts import services as account_services

    chain = await database_sync_to_async(submit)(user)
    issued = await database_sync_to_async(account_services.token_create)(actor=user, name="cli")
    comm = communicator(ws_app, path.format(chain=chain.pk), token=issued.raw, origin=None)
    assert (await comm.connect())[0]
    assert await comm.receive_nothing(0.3)  # checked several times: still fine, nothing sent
    await database_sync_to_async(account_services.token_revoke)(actor=user, token=issued.token)
    assert "revoked" in await closed_as_unauthenticated(comm)


async def test_a_token_that_expires_closes_its_socket_at_expiry(ws_app, settings, user):
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts import services as account_services

    settings.ROTA_REALTIME = {"AUTH_RECHECK_SECONDS": 3600}  # only the expiry can close it in time
    expires = timezone.now() + timedelta(seconds=1)
    issued = await database_sync_to_async(account_services.token_create)(actor=user, name="short", expires_at=expires)
    comm = communicator(ws_app, "/ws/events/", token=issued.raw, origin=None)
    assert (await comm.connect())[0]
    assert "expired" in await closed_as_unauthenticated(comm, timeout=10)
    assert timezone.now() >= expires


async def test_a_deactivated_account_loses_its_open_socket(ws_app, quick_recheck, user, token_for):
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user), origin=None)
    assert (await comm.connect())[0]
    user.is_active = False
    await database_sync_to_async(user.save)(update_fields=["is_active"])
    assert "deactivated" in await closed_as_unauthenticated(comm)


async def test_signing_out_closes_the_browsers_socket_and_a_live_session_keeps_it(
    ws_app, quick_recheck, user, other_user, cookie_for
):
    from django.contrib.sessions.models import Session

    cookie = await database_sync_to_async(cookie_for)(user)
    kept_cookie = await database_sync_to_async(cookie_for)(other_user)
    comm = communicator(ws_app, "/ws/events/", cookie=cookie)
    kept = communicator(ws_app, "/ws/events/", cookie=kept_cookie)
    assert (await comm.connect())[0] and (await kept.connect())[0]
    assert await comm.receive_nothing(0.3)
    key = cookie.split("=", 1)[1]
    await database_sync_to_async(lambda: Session.objects.filter(session_key=key).delete())()  # signed out
    assert "signed out" in await closed_as_unauthenticated(comm)
    assert await kept.receive_nothing(0.3)
    await kept.send_json_to({"action": "ping"})
    assert await kept.receive_json_from() == {"type": "pong"}
    await kept.disconnect()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("; django_language=zh-hans", "你已退出登录。请重新登录以继续接收实时更新。"),
        ("", "You were signed out. Sign in again to keep following live updates."),
    ],
)
async def test_the_sign_out_message_is_in_the_browsers_language(
    ws_app, quick_recheck, user, cookie_for, extra, expected
):
    from django.contrib.sessions.models import Session

    cookie = await database_sync_to_async(cookie_for)(user)
    comm = communicator(ws_app, "/ws/events/", cookie=cookie + extra)
    assert (await comm.connect())[0]
    key = cookie.split("=", 1)[1]
    await database_sync_to_async(lambda: Session.objects.filter(session_key=key).delete())()
    assert await closed_as_unauthenticated(comm) == expected


async def test_the_socket_language_follows_the_cookie_then_accept_language():
    from apps.accounts.ws_auth import scope_language

    zh = [(b"accept-language", b"zh-CN,zh;q=0.9,en;q=0.8")]
    assert scope_language({"cookies": {"django_language": "zh-hans"}, "headers": []}) == "zh-hans"
    assert scope_language({"cookies": {"django_language": "en"}, "headers": zh}) == "en"
    assert scope_language({"cookies": {}, "headers": zh}) == "zh-hans"
    assert scope_language({"cookies": {"django_language": "klingon"}, "headers": [(b"accept-language", b"fr")]}) == "en"


async def test_changing_the_password_ends_the_other_sessions_sockets(ws_app, quick_recheck, user, cookie_for):
    cookie = await database_sync_to_async(cookie_for)(user)
    comm = communicator(ws_app, "/ws/events/", cookie=cookie)
    assert (await comm.connect())[0]

    def change_password() -> None:
        user.set_password("a-new-password-42")
        user.save(update_fields=["password"])

    await database_sync_to_async(change_password)()
    assert "signed out" in await closed_as_unauthenticated(comm)


async def test_one_batch_checks_every_credential_with_at_most_three_queries(
    django_assert_max_num_queries, user, other_user, cookie_for
):
    """Many sockets' credentials (tokens, sessions, several users) cost three queries, not one per
    socket, and each still gets its own verdict."""
    from django.contrib.sessions.models import Session

    from apps.accounts import services as account_services
    from apps.accounts.models import ApiToken
    from apps.accounts.ws_auth import Credential, credential_problem_texts

    def token(owner):
        issued = account_services.token_create(actor=owner, name=f"t{ApiToken.objects.count()}")
        return Credential("token", owner.pk, token_id=issued.token.pk)

    def session(owner):
        return Credential("session", owner.pk, session_key=cookie_for(owner).split("=", 1)[1])

    def make_checks() -> list[tuple[Credential | None, str]]:
        good = [token(user) for _ in range(20)] + [session(user) for _ in range(20)] + [token(other_user)]
        revoked, deleted, signed_out, others = token(user), token(user), session(user), session(other_user)
        account_services.token_revoke(actor=user, token=ApiToken.objects.get(pk=revoked.token_id))
        ApiToken.objects.filter(pk=deleted.token_id).delete()
        Session.objects.filter(session_key=signed_out.session_key).delete()
        other_user.is_active = False
        other_user.save(update_fields=["is_active"])
        english = [(c, "en") for c in [*good, revoked, deleted, signed_out, others, None]]
        return [*english, (revoked, "zh-hans")]

    def check(checks: list[tuple[Credential | None, str]]) -> list[str | None]:
        with django_assert_max_num_queries(3):
            return credential_problem_texts(checks)

    checks = await database_sync_to_async(make_checks)()
    problems = await database_sync_to_async(check)(checks)

    assert problems[:40] == [None] * 40
    assert problems[40] == "Your account was deactivated."  # other_user's token: the account is off now
    assert problems[41:] == [
        "The token this connection used was revoked. Sign in again.",
        "The token this connection used was deleted. Sign in again.",
        "You were signed out. Sign in again to keep following live updates.",
        "Your account was deactivated.",
        None,
        "此连接所用的令牌已被吊销。请重新登录。",
    ]


async def test_a_process_rechecks_all_its_sockets_in_one_batch_and_closes_a_revoked_one_at_the_next(
    ws_app, settings, cluster, submit, user, token_for, monkeypatch
):
    """Every re-check round covers every open socket of the process in one call; a token revoked
    between rounds loses its socket at the next round, and the other sockets stay open."""
    from apps.accounts import services as account_services
    from apps.accounts import ws_auth
    from apps.experiments import consumers

    settings.ROTA_REALTIME = {"AUTH_RECHECK_SECONDS": 0.05}
    batches: list[tuple[int, int]] = []  # (sockets checked, problems found), in the order called
    real = ws_auth.credential_problem_texts

    def recorded(checks):
        problems = real(checks)
        batches.append((len(checks), sum(p is not None for p in problems)))
        return problems

    monkeypatch.setattr(consumers, "credential_problem_texts", recorded)
    chain = await database_sync_to_async(submit)(user)
    shared = await database_sync_to_async(token_for)(user)
    issued = await database_sync_to_async(account_services.token_create)(actor=user, name="cli")
    kept = [communicator(ws_app, "/ws/events/", token=shared, origin=None) for _ in range(6)]
    kept += [communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=shared, origin=None) for _ in range(6)]
    doomed = communicator(ws_app, "/ws/events/", token=issued.raw, origin=None)
    for comm in [*kept, doomed]:
        assert (await comm.connect())[0]
    watch = consumers.get_credential_watch()
    assert len(watch.watches) == 13

    async def rounds_after(count: int) -> None:
        target = watch.rounds + count
        deadline = time.monotonic() + 10
        while watch.rounds < target:
            assert time.monotonic() < deadline, "no re-check round within 10 s"
            await asyncio.sleep(0.01)

    await rounds_after(4)  # the first may have started before the last socket joined
    assert batches[-3:] == [(13, 0)] * 3  # one call for all of them, each round
    # Batches run in the one database thread, as the revocation does: each wholly before or after it.
    await database_sync_to_async(account_services.token_revoke)(actor=user, token=issued.token)
    first_after = len(batches)
    assert "revoked" in await closed_as_unauthenticated(comm=doomed)
    assert batches[first_after - 1][1] == 0 and batches[first_after] == (13, 1)  # the first round after it
    assert len(watch.watches) == 12
    await rounds_after(2)
    assert batches[-1] == (12, 0)
    for comm in kept[:6]:
        await comm.send_json_to({"action": "ping"})
        assert await comm.receive_json_from() == {"type": "pong"}
    for comm in kept[6:]:
        assert await comm.receive_nothing(0.05)  # still open: nothing was said to it
    for comm in kept:
        await comm.disconnect()
    assert watch.watches == {}
