"""A reusable permission suite (after NetBox's ``utilities/testing/views.py``).

Each endpoint is declared once with how it should answer anonymous users, ordinary users who do
not own the object, and admins. The suite checks the status *and* that a refused request changed
nothing in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as django_apps


@dataclass
class Endpoint:
    name: str
    method: str
    url: Callable[[dict[str, Any]], str]
    data: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None = None
    admin_only: bool = False
    owner_scoped: bool = False  # another (non-admin) user gets 404 (object hidden)
    ok_status: int = 200
    admin_status: int | None = None  # status for an admin (default ok_status); None = as ok
    skip_admin: bool = False
    tags: set[str] = field(default_factory=set)

    def payload(self, ctx: dict[str, Any]) -> dict[str, Any] | None:
        return self.data(ctx) if callable(self.data) else self.data


def db_state() -> dict[str, int | tuple[Any, ...]]:
    """A fingerprint of every table of Rota's apps: row counts plus the newest rows' values."""
    state: dict[str, int | tuple[Any, ...]] = {}
    for model in django_apps.get_models():
        label = model._meta.label
        if model._meta.app_label in {"sessions", "admin", "contenttypes", "django_q"}:
            continue
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in {"last_used_at", "last_login"}]
        state[label] = tuple(model.objects.order_by("pk").values_list(*fields))
    return state


def call(client: Any, endpoint: Endpoint, ctx: dict[str, Any]) -> Any:
    method = getattr(client, endpoint.method.lower())
    payload = endpoint.payload(ctx)
    if payload is None:
        return method(endpoint.url(ctx))
    return method(endpoint.url(ctx), payload, format="json")
