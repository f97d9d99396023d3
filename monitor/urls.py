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
    path("nodes/", views.nodes_view, name="nodes"),
    path("nodes/<int:pk>/", views.node_detail_view, name="node-detail"),
    path("nodes/<int:pk>/action/", views.node_action_view, name="node-action"),
    path("containers/", views.container_policies_view, name="container-policies"),
    path("containers/<int:pk>/", views.container_policy_save_view, name="container-policy-save"),
    path("jobs/", views.jobs_view, name="jobs"),
    path("jobs/batch/", views.jobs_batch_view, name="jobs-batch"),
    path("scheduler/", views.scheduler_view, name="scheduler"),
    path("scheduler/history/", views.scheduler_history_view, name="scheduler-history"),
    path("usage/", views.usage_view, name="usage"),
    path("notices/", views.notices_view, name="notices"),
    path("notices/new/", views.notice_create_view, name="notice-create"),
    path("notices/<int:pk>/", views.notice_edit_view, name="notice-edit"),
    path("notices/<int:pk>/expire/", views.notice_expire_view, name="notice-expire"),
    path("notices/<int:pk>/delete/", views.notice_delete_view, name="notice-delete"),
    path("audit/", views.audit_view, name="audit"),
]
