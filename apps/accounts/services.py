"""Writes for users, groups and API tokens.

Every write by an admin on someone else's account is recorded in the audit log in the same
transaction. Raw token secrets are returned once by ``token_create`` and never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts import tokens
from apps.accounts.choices import PUBLIC_GROUP, AdminGroup, Role, TokenScope
from apps.accounts.events import ACCESS_FIELDS, UserAccessChanged
from apps.accounts.models import POSIX_ID_MAX, POSIX_ID_MIN, ApiToken, User
from apps.core.audit import audit_record, snapshot
from apps.core.errors import ApplicationError, NotFound, PermissionDenied
from portal.realtime import send_event_on_commit, user_group

USER_AUDIT_FIELDS = ["username", "role", "nickname", "team", "is_active", "email", "posix_uid", "posix_gid"]
MAX_TOKEN_NAME = 100


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str  # shown once


def _require_user_admin(actor: User) -> None:
    if not actor.in_admin_group():
        raise PermissionDenied(_("Only root admins may manage users."))


def group_get_or_create(*, name: str) -> Group:
    name = name.strip()
    if not name:
        raise ApplicationError(_("A group needs a name."), fields={"group": [_("This field may not be blank.")]})
    group, _created = Group.objects.get_or_create(name=name)
    return group


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    username: str,
    password: str | None = None,
    role: str = Role.INTERNAL,
    nickname: str = "",
    email: str = "",
    team: str | None = None,
    groups: list[str] | None = None,
    is_active: bool = True,
    is_superuser: bool = False,
    posix_uid: int | None = None,
    posix_gid: int | None = None,
) -> User:
    """Create a user (admins only when ``actor`` is given; ``None`` = the system, e.g. bootstrap).

    The user's team is also added to their groups. POSIX ids are checked as in ``user_update``.
    Audited (one ``user.create`` entry).
    """
    if actor is not None:
        _require_user_admin(actor)
    username = username.strip()
    if not username:
        raise ApplicationError(_("A user needs a user name."), fields={"username": [_("This field is required.")]})
    if role not in Role.values:
        raise ApplicationError(
            _("Unknown role %(role)s: use internal or external.") % {"role": role}, fields={"role": [_("Invalid.")]}
        )
    if User.objects.filter(username=username).exists():
        raise ApplicationError(
            _("A user named %(name)s already exists.") % {"name": username}, fields={"username": [_("Taken.")]}
        )
    validate_posix_ids(user=User(), changes={"posix_uid": posix_uid, "posix_gid": posix_gid})
    user = User(
        username=username,
        role=role,
        nickname=nickname,
        email=email,
        posix_uid=posix_uid,
        posix_gid=posix_gid,
        is_active=is_active,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    if team:
        user.team = group_get_or_create(name=team)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        raise ApplicationError(_("A user named %(name)s already exists.") % {"name": username}) from exc
    names = set(groups or [])
    if team:
        names.add(team)
    if names:
        user.groups.set([group_get_or_create(name=n) for n in sorted(names)])
    after = snapshot(user, USER_AUDIT_FIELDS)
    after["groups"] = sorted(names)
    audit_record(actor=actor, action="user.create", target=user, after=after)
    return user


def validate_posix_ids(*, user: User, changes: dict[str, Any]) -> None:
    """Refuse POSIX ids outside the valid range, and a uid another user already has."""
    errors: dict[str, list[str]] = {}
    for name in ("posix_uid", "posix_gid"):
        value = changes.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not POSIX_ID_MIN <= value <= POSIX_ID_MAX:
            errors[name] = [
                _("Use a whole number from %(lo)d to %(hi)d (ids below %(lo)d belong to system accounts).")
                % {"lo": POSIX_ID_MIN, "hi": POSIX_ID_MAX}
            ]
    uid = changes.get("posix_uid")
    if "posix_uid" not in errors and uid is not None:
        holder = User.objects.filter(posix_uid=uid).exclude(pk=user.pk).values_list("username", flat=True).first()
        if holder is not None:
            errors["posix_uid"] = [_("uid %(uid)d already belongs to %(name)s.") % {"uid": uid, "name": holder}]
    if errors:
        raise ApplicationError(_("Check the POSIX ids."), fields=errors)


@transaction.atomic
def user_update(*, actor: User | None, user: User, audit_note: str = "", **changes: Any) -> User:
    """Change a user's role, nickname, email, team, groups, active flag or POSIX ids. Audited
    (one ``user.update`` entry, with ``audit_note`` when given; none if nothing changed).

    POSIX ids are 1000..2**31-1 (``None`` clears them); a uid belongs to one user at most.
    """
    if actor is not None:
        _require_user_admin(actor)
    allowed = {"role", "nickname", "email", "team", "groups", "is_active", "password", "posix_uid", "posix_gid"}
    unknown = set(changes) - allowed
    if unknown:
        raise ApplicationError(_("These fields cannot be changed: %(f)s") % {"f": ", ".join(sorted(unknown))})
    validate_posix_ids(user=user, changes=changes)
    user = User.objects.select_for_update().get(pk=user.pk)
    before = snapshot(user, USER_AUDIT_FIELDS)
    before["groups"] = sorted(user.groups.values_list("name", flat=True))
    if "role" in changes:
        if changes["role"] not in Role.values:
            raise ApplicationError(_("Unknown role: use internal or external."), fields={"role": [_("Invalid.")]})
        user.role = changes["role"]
    for name in ("nickname", "email", "is_active", "posix_uid", "posix_gid"):
        if name in changes:
            setattr(user, name, changes[name])
    if "team" in changes:
        user.team = group_get_or_create(name=changes["team"]) if changes["team"] else None
    if changes.get("password"):
        user.set_password(changes["password"])
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # another admin gave the same uid at the same moment
        raise ApplicationError(
            _("uid %(uid)s already belongs to another user.") % {"uid": user.posix_uid},
            fields={"posix_uid": [_("Taken.")]},
        ) from exc
    if "groups" in changes or "team" in changes:
        names = set(changes["groups"]) if "groups" in changes else set(before["groups"])
        if user.team is not None:
            names.add(user.team.name)
        user.groups.set([group_get_or_create(name=n) for n in sorted(names)])
    after = snapshot(user, USER_AUDIT_FIELDS)
    after["groups"] = sorted(user.groups.values_list("name", flat=True))
    if after != before:
        audit_record(actor=actor, action="user.update", target=user, before=before, after=after, note=audit_note)
    if any(before.get(name) != after.get(name) for name in ACCESS_FIELDS):
        send_event_on_commit([user_group(user.pk)], UserAccessChanged(user_id=user.pk))
    return user


def _validate_token_input(*, name: str, scope: str, expires_at: datetime | None) -> str:
    name = name.strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Give the token a name, e.g. 'laptop' or 'ci'.")]
    elif len(name) > MAX_TOKEN_NAME:
        errors["name"] = [_("At most %(n)d characters.") % {"n": MAX_TOKEN_NAME}]
    if scope not in (TokenScope.ALL, TokenScope.EXCEPT_JUPYTER, TokenScope.READ_ONLY):
        errors["scope"] = [_("Choose all, except_jupyter or read_only.")]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = [_("The expiry must be in the future.")]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ApplicationError(first, fields=errors)
    return name


def _issue(*, user: User, name: str, scope: str, expires_at: datetime | None, **extra: Any) -> IssuedToken:
    for _attempt in range(5):
        prefix, raw = tokens.generate()
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    digest=tokens.digest(raw),
                    scope=scope,
                    expires_at=expires_at,
                    **extra,
                )
            return IssuedToken(token=token, raw=raw)
        except IntegrityError:
            continue  # prefix collision: astronomically rare; draw again
    raise ApplicationError(_("Could not issue a token; please try again."))


@transaction.atomic
def token_create(
    *,
    actor: User,
    user: User | None = None,
    name: str,
    scope: str = TokenScope.ALL,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Issue an API token for ``user`` (default: the actor). The raw secret is in the result only.

    Issuing for somebody else needs root and is audited.
    """
    owner = user or actor
    name = _validate_token_input(name=name, scope=scope, expires_at=expires_at)
    if owner.pk != actor.pk and not actor.in_admin_group():
        raise PermissionDenied(_("Only root admins may issue tokens for other users."))
    if not owner.is_active:
        raise ApplicationError(_("%(name)s is deactivated; activate the account first.") % {"name": owner.username})
    issued = _issue(
        user=owner, name=name, scope=scope, expires_at=expires_at, created_by=actor if owner.pk != actor.pk else None
    )
    if owner.pk != actor.pk:
        audit_record(
            actor=actor,
            action="token.issue",
            target=issued.token,
            after={"user": owner.username, "name": name, "scope": scope, "prefix": issued.token.prefix},
        )
    return issued


def token_create_for_attempt(*, user: User, attempt_id: int, expires_at: datetime | None = None) -> IssuedToken:
    """Issue the attempt-scoped token a job uses for the runtime API (``ROTA_TASK_TOKEN``)."""
    return _issue(
        user=user, name=f"job attempt {attempt_id}", scope=TokenScope.JOB, expires_at=expires_at, attempt_id=attempt_id
    )


@transaction.atomic
def token_revoke(*, actor: User, token: ApiToken) -> ApiToken:
    """Revoke a token (its owner or root). Revoking twice is harmless. Admin revocations are audited."""
    if token.user_id != actor.pk and not actor.in_admin_group():
        raise NotFound(_("No such token."))
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.revoked_by = actor
        token.save(update_fields=["revoked_at", "revoked_by"])
        if token.user_id != actor.pk:
            audit_record(actor=actor, action="token.revoke", target=token, after={"prefix": token.prefix})
    return token


def tokens_revoke_for_attempt(*, attempt_id: int) -> int:
    """Revoke the job tokens of an attempt once it has finished. Returns how many were revoked."""
    return ApiToken.objects.filter(attempt_id=attempt_id, revoked_at__isnull=True).update(revoked_at=timezone.now())


def ensure_admin_groups() -> None:
    """Create the permission groups and the implicit quota groups (idempotent)."""
    for value in [*AdminGroup.values, PUBLIC_GROUP, *Role.values]:
        Group.objects.get_or_create(name=value)
