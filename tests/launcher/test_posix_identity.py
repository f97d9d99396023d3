"""Which Unix account a job runs as on the local backend, and what happens without one (issue 12,
item 3): mapped by an admin, else this machine's account of the same name, else refused (the
production default) or run as the server's user."""

from __future__ import annotations

import dataclasses
import os

import pytest

from apps.accounts import services as account_services
from apps.accounts.posix import PosixAccount, host_account, posix_account, unmapped_owners_refused
from apps.core.errors import ApplicationError
from apps.experiments.models import Chain
from apps.launcher.backends.base import RankPhase
from apps.launcher.backends.local import single_tenant_warning
from apps.launcher.pods import FALLBACK_UID_BASE
from apps.launcher.reconcile import build_spec
from tests.factories import UserFactory
from tests.launcher.test_local_backend import Harness, harness  # noqa: F401  (the fixture)

REFUSE = "refuse"


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decide as a server running as root would (nothing here actually switches users)."""
    monkeypatch.setattr("apps.accounts.posix.os.geteuid", lambda: 0)
    monkeypatch.setattr("apps.launcher.backends.local.os.geteuid", lambda: 0)


@pytest.fixture
def refusing(settings, as_root) -> None:
    settings.ROTA_BACKEND = "local"
    settings.ROTA_LOCAL_UNMAPPED_OWNERS = REFUSE


def test_the_production_profile_refuses_by_default() -> None:
    from django.conf import settings

    # settings_test switches it off for the suite's made-up users; the profile's own default is:
    assert settings.ROTA_LOCAL_UNMAPPED_OWNERS == "run-as-server"
    import secrets
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.ROTA_LOCAL_UNMAPPED_OWNERS)"
    for profile, expected in (("production", "refuse"), ("embedded", "run-as-server")):
        env = {
            **os.environ,
            "ROTA_ENV": profile,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "SECRET_KEY": secrets.token_urlsafe(60),
            "ALLOWED_HOSTS": "localhost",
            "DATABASE_URL": "postgres://rota@127.0.0.1:1/rota",  # read, never connected to
            "REDIS_URL": "redis://127.0.0.1:1/0",
        }
        if profile == "embedded":
            del env["DATABASE_URL"], env["REDIS_URL"]
        env.pop("ROTA_LOCAL_UNMAPPED_OWNERS", None)
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (out.returncode, out.stdout.strip()) == (0, expected), (profile, out.stderr[-2000:])


def test_host_accounts_match_by_name_and_never_root() -> None:
    assert host_account("nobody") == PosixAccount(uid=65534, gid=65534, source="host")
    assert host_account("root") is None
    assert host_account("no-such-user-anywhere") is None
    assert host_account("bad\x00name") is None


@pytest.mark.django_db
def test_an_admins_mapping_wins_over_the_host_account() -> None:
    user = UserFactory(username="nobody")
    assert posix_account(user, host_lookup=True) == PosixAccount(uid=65534, gid=65534, source="host")
    assert posix_account(user, host_lookup=False) is None  # Kubernetes: the server's accounts mean nothing
    account_services.user_update(actor=None, user=user, posix_uid=4201, posix_gid=4200)
    user.refresh_from_db()
    assert posix_account(user, host_lookup=True) == PosixAccount(uid=4201, gid=4200, source="mapped")


@pytest.mark.django_db
def test_the_launch_spec_carries_the_account_and_the_policy(cluster, submit, settings) -> None:
    settings.ROTA_BACKEND = "local"
    named = Chain.objects.get(pk=submit(UserFactory(username="nobody")).pk)
    unmapped = UserFactory(username="carol-has-no-account")
    submitted = Chain.objects.get(pk=submit(unmapped).pk)  # before the setting changed
    spec = build_spec(named.attempts.get())
    assert (spec.uid, spec.gid, spec.uid_mapped, spec.refuse_unmapped) == (65534, 65534, True, False)
    settings.ROTA_LOCAL_UNMAPPED_OWNERS = REFUSE
    spec = build_spec(submitted.attempts.get())
    assert (spec.uid, spec.gid, spec.uid_mapped, spec.refuse_unmapped) == (
        FALLBACK_UID_BASE + unmapped.pk,
        None,
        False,
        True,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("refusing")
def test_submit_is_refused_with_what_to_do_and_nothing_is_written(cluster, submit) -> None:
    user = UserFactory(username="carol-has-no-account")
    assert unmapped_owners_refused()
    with pytest.raises(ApplicationError) as caught:
        submit(user)
    assert caught.value.code == "no_posix_account"
    assert "carol-has-no-account has none on this cluster" in str(caught.value)
    assert "Ask an admin to set your POSIX uid" in str(caught.value)
    assert not Chain.objects.exists()
    # A mapped user, or one with an account of the same name, submits as before.
    account_services.user_update(actor=None, user=user, posix_uid=4301, posix_gid=4300)
    user.refresh_from_db()
    assert submit(user).pk
    assert submit(UserFactory(username="nobody")).pk


@pytest.mark.django_db
def test_nothing_is_refused_off_root_or_on_kubernetes(cluster, submit, settings, monkeypatch) -> None:
    settings.ROTA_LOCAL_UNMAPPED_OWNERS = REFUSE
    monkeypatch.setattr("apps.accounts.posix.os.geteuid", lambda: 1000)
    assert not unmapped_owners_refused()
    monkeypatch.setattr("apps.accounts.posix.os.geteuid", lambda: 0)
    settings.ROTA_BACKEND = "kubernetes"
    assert not unmapped_owners_refused()


@pytest.mark.usefixtures("refusing")
def test_the_start_up_warning_says_what_happens_to_unmapped_owners(settings) -> None:
    assert "jobs of users without one are refused" in single_tenant_warning(refuse_unmapped=unmapped_owners_refused())
    settings.ROTA_LOCAL_UNMAPPED_OWNERS = "run-as-server"
    assert "run as root, unisolated" in single_tenant_warning(refuse_unmapped=unmapped_owners_refused())


@pytest.mark.skipif(os.geteuid() != 0, reason="the supervisor decides as root only")
def test_as_root_the_supervisor_refuses_an_unmapped_owners_job(harness: Harness) -> None:  # noqa: F811
    """The safety net behind the submit check (a job submitted before the setting changed, or an
    account removed since): the rank fails with the reason in its log, and nothing runs."""
    entry = harness.script("who.sh", "id -u > ran-as\n")
    spec = dataclasses.replace(harness.spec(53, entry), uid=10007, uid_mapped=False, refuse_unmapped=True)
    harness.backend.start(spec)
    final = harness.wait_final(53)[0]
    assert final.phase == RankPhase.FAILED
    assert "has no POSIX account on this cluster" in final.message
    assert any("Ask an admin to set your POSIX uid" in line for line in harness.log(53))
    assert not (harness.workspace / "ran-as").exists()
