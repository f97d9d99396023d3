"""Reads for users and tokens."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import ApiToken, User


def tokens_of(*, user: User, include_revoked: bool = False) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first (job tokens are the platform's, not listed)."""
    qs = ApiToken.objects.filter(user=user).exclude(scope="job").select_related("created_by")
    if not include_revoked:
        qs = qs.filter(revoked_at__isnull=True)
    return qs


def token_get_for_owner(*, user: User, token_id: int) -> ApiToken | None:
    return ApiToken.objects.filter(user=user, pk=token_id).exclude(scope="job").first()


def users_list() -> QuerySet[User]:
    return User.objects.select_related("team").prefetch_related("groups").order_by("username")
