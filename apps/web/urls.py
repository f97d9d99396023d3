"""Portal pages at the root of the site (the API lives under /api/v1/)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.web import views

app_name = "web"

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("admin/", views.admin_entry_view, name="admin-entry"),
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", views.language_view, name="language"),
    path("theme/", views.theme_view, name="theme"),
    path("experiments/", views.chain_list_view, name="chain-list"),
    path("experiments/batch/", views.chain_batch_view, name="chain-batch"),
    path("experiments/<int:pk>/", views.chain_detail_view, name="chain-detail"),
    path("experiments/<int:pk>/row/", views.chain_row_view, name="chain-row"),
    path("experiments/<int:pk>/logs/", views.chain_logs_view, name="chain-logs"),
    path("experiments/<int:pk>/logs/read/", views.chain_log_read_view, name="chain-log-read"),
    path("experiments/<int:pk>/stop/", views.chain_action_view, {"action": "stop"}, name="chain-stop"),
    path("experiments/<int:pk>/suspend/", views.chain_action_view, {"action": "suspend"}, name="chain-suspend"),
    path("experiments/<int:pk>/resume/", views.chain_action_view, {"action": "resume"}, name="chain-resume"),
    path(
        "experiments/<int:pk>/stop/succeeded/",
        views.chain_action_view,
        {"action": "stop_succeeded"},
        name="chain-stop-succeeded",
    ),
    path(
        "experiments/<int:pk>/stop/failed/",
        views.chain_action_view,
        {"action": "stop_failed"},
        name="chain-stop-failed",
    ),
    path("experiments/<int:pk>/move/", views.chain_move_view, name="chain-move"),
    path("experiments/<int:pk>/priority/", views.chain_priority_view, name="chain-priority"),
    path("experiments/<int:pk>/front/", views.chain_front_view, name="chain-front"),
    path("experiments/<int:pk>/tags/", views.chain_tag_view, name="chain-tag"),
    path("experiments/<int:pk>/tags/remove/", views.chain_tag_view, {"remove": True}, name="chain-untag"),
    path("experiments/<int:pk>/star/", views.chain_star_view, name="chain-star"),
    path("experiments/<int:pk>/share/", views.chain_share_view, name="chain-share"),
    path("submit/", views.submit_view, name="submit"),
    path("submit/preview/", views.submit_preview_view, name="submit-preview"),
    path("account/", views.profile_view, name="profile"),
    path("account/tokens/", views.tokens_view, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke_view, name="token-revoke"),
    path("account/settings/", views.settings_view, name="settings"),
]
