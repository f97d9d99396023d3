"""Admin notices are written in Django's admin (``/django-admin/``), through the service so they
are validated and audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.web import services
from apps.web.models import Notice, UserPreference


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ["title", "severity", "audience", "group", "user", "starts_at", "expires_at"]
    list_filter = ["severity", "audience"]
    search_fields = ["title", "body"]
    raw_id_fields = ["user"]

    def save_model(self, request: HttpRequest, obj: Notice, form: Any, change: bool) -> None:
        services.notice_save(actor=request.user, notice=obj)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Notice) -> None:
        services.notice_delete(actor=request.user, notice=obj)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Notice]) -> None:
        for notice in queryset:  # one audited delete each
            services.notice_delete(actor=request.user, notice=notice)  # type: ignore[arg-type]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "in_admin_group", lambda: False)())

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    has_add_permission = has_module_permission  # type: ignore[assignment]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


@admin.register(UserPreference)
class UserPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "language", "theme", "updated_at"]
    raw_id_fields = ["user"]
    search_fields = ["user__username"]
