"""API permissions: active users, token scopes, admin groups."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import permissions
from rest_framework.request import Request

from apps.accounts.choices import AdminGroup, TokenScope
from apps.accounts.models import ApiToken, User


def token_scope_error(request: Request, view: Any) -> str | None:
    """Why the request's token scope forbids this view, or None if it is allowed."""
    token = request.auth if isinstance(request.auth, ApiToken) else None
    if token is None:
        return None
    if token.scope == TokenScope.JOB:
        return None if getattr(view, "allow_job_token", False) else _("Job tokens may only call the job runtime API.")
    revoking_itself = (
        getattr(view, "allows_self_revoke", False)
        and request.method == "DELETE"
        and str(getattr(view, "kwargs", {}).get("pk")) == str(token.pk)
    )
    if token.scope == TokenScope.READ_ONLY and request.method not in permissions.SAFE_METHODS and not revoking_itself:
        return _("This token is read-only.")
    if token.scope == TokenScope.EXCEPT_JUPYTER and getattr(view, "is_container_api", False):
        return _("This token may not manage dev containers.")
    return None


class IsActiveUser(permissions.BasePermission):
    """Authenticated, active, and the token's scope allows this view."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        reason = token_scope_error(request, view)
        if reason is not None:
            self.message = reason
            return False
        return True


class _AdminGroupPermission(IsActiveUser):
    groups: tuple[AdminGroup, ...] = ()
    message = _("You need admin rights for this.")

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return super().has_permission(request, view) and isinstance(user, User) and user.in_admin_group(*self.groups)


class IsUserAdmin(_AdminGroupPermission):
    groups = ()  # root only


class IsQuotaAdmin(_AdminGroupPermission):
    groups = (AdminGroup.QUOTA_EDITOR,)


class IsClusterAdmin(_AdminGroupPermission):
    groups = (AdminGroup.CLUSTER_MANAGER, AdminGroup.OPS)
