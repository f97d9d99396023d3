from django.urls import path

from apps.core.api import views

urlpatterns = [path("admin/audit/", views.AuditListView.as_view(), name="api-admin-audit")]
