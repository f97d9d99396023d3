from django.urls import path

from apps.quotas.api import views

urlpatterns = [
    path("quota/", views.MyQuotaView.as_view(), name="api-my-quota"),
    path("admin/quotas/", views.AdminQuotaListCreateView.as_view(), name="api-admin-quotas"),
    path("admin/quotas/<int:pk>/", views.AdminQuotaDetailView.as_view(), name="api-admin-quota-detail"),
]
