"""Users in Django's admin (``/django-admin/``): root admins set POSIX ids and the other fields a
user service may change. Saves go through ``user_update`` so they are validated and audited;
users are created through the portal or API (``user_create``), not here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms import ModelForm
from django.http import HttpRequest

from apps.accounts import services
from apps.accounts.models import User
from apps.core.errors import ApplicationError

EDITABLE = ("nickname", "email", "role", "is_active", "posix_uid", "posix_gid")


class UserAdminForm(ModelForm):
    """Runs the service's checks at validation time, so errors show next to the fields."""

    class Meta:
        model = User
        fields = list(EDITABLE)

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        changed = [name for name in ("posix_uid", "posix_gid") if name in self.changed_data]
        posix: dict[str, Any] = {name: cleaned.get(name) for name in changed}
        try:
            services.validate_posix_ids(user=self.instance, changes=posix)
        except ApplicationError as exc:
            raise ValidationError({k: list(v) for k, v in (exc.fields or {}).items()}) from exc
        return cleaned


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    form = UserAdminForm
    list_display = ["username", "nickname", "role", "team", "posix_uid", "posix_gid", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["username", "nickname", "email"]
    fields = ["username", *EDITABLE, "team", "date_joined", "last_login"]
    readonly_fields = ["username", "team", "date_joined", "last_login"]

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE}
        services.user_update(actor=request.user, user=obj, **changes)  # type: ignore[arg-type]

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return isinstance(user, User) and user.in_admin_group()  # root only, like the users API

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
