"""The admin pages under /monitor/."""

from django.urls import path

from monitor import views

app_name = "monitor"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("users/", views.users_view, name="users"),
    path("users/new/", views.user_create_view, name="user-create"),
    path("users/<int:pk>/", views.user_detail_view, name="user-detail"),
    path("users/<int:pk>/edit/", views.user_edit_view, name="user-edit"),
    path("users/<int:pk>/activation/", views.user_activation_view, name="user-activation"),
    path("quotas/", views.quotas_view, name="quotas"),
    path("quotas/save/", views.quotas_save_view, name="quotas-save"),
]
