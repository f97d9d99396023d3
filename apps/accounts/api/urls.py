from django.urls import path

from apps.accounts.api import views

urlpatterns = [
    path("auth/token/", views.LoginTokenView.as_view(), name="api-auth-token"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("tokens/", views.TokenListCreateView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", views.TokenDetailView.as_view(), name="api-token-detail"),
    path("admin/users/", views.AdminUserListCreateView.as_view(), name="api-admin-users"),
    path("admin/users/<int:pk>/", views.AdminUserDetailView.as_view(), name="api-admin-user-detail"),
    path("admin/users/<int:pk>/tokens/", views.AdminUserTokenCreateView.as_view(), name="api-admin-user-tokens"),
]
