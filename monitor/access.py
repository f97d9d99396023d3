"""Who may open which /monitor page and do which action.

Admin power comes from groups (``apps.accounts.choices.AdminGroup``; HAI's ``MonitorCanAdminGroups``).
Every member of an admin group may *read* the admin pages; each *write* needs the group whose
business it is, and the service called checks it again (the page check only decides what the page
shows and answers 403 early). People outside every admin group get a 404: /monitor does not exist
for them. ``root`` (and superusers) hold every power.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User


class Power(Enum):
    """An admin power: its name and the groups (besides root) that hold it."""

    VIEW = ("view", (AdminGroup.CLUSTER_MANAGER, AdminGroup.OPS, AdminGroup.QUOTA_EDITOR, AdminGroup.TASK_ADMIN))
    USERS = ("users", ())  # create, edit, activate users: root only (as ``apps.accounts.services``)
    QUOTAS = ("quotas", (AdminGroup.QUOTA_EDITOR,))
    NODES = ("nodes", (AdminGroup.CLUSTER_MANAGER, AdminGroup.OPS))
    JOBS = ("jobs", (AdminGroup.OPS, AdminGroup.TASK_ADMIN))
    NOTICES = ("notices", ())  # root only (as ``apps.web.services.notice_save``)

    @property
    def groups(self) -> tuple[AdminGroup, ...]:
        return self.value[1]


def has_power(user: Any, power: Power) -> bool:
    return isinstance(user, User) and user.is_authenticated and user.in_admin_group(*power.groups)


def powers_of(user: Any) -> dict[str, bool]:
    """``{"users": True, …}`` for templates: which actions to offer."""
    return {power.name.lower(): has_power(user, power) for power in Power}


View = Callable[..., HttpResponseBase]


def monitor_view(power: Power = Power.VIEW) -> Callable[[View], View]:
    """Sign-in required; non-admins get 404; admins without ``power`` get 403."""

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not has_power(request.user, Power.VIEW):
                raise Http404("No such page.")
            if not has_power(request.user, power):
                raise PermissionDenied("Your admin group may not do this.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
