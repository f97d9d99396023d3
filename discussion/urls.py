"""Forum pages under /discuss/."""

from django.urls import path

from discussion import views

app_name = "discussion"

urlpatterns = [
    path("", views.post_list_view, name="post-list"),
    path("new/", views.post_create_view, name="post-create"),
    path("search/", views.search_view, name="search"),
    path("upload/", views.image_upload_view, name="image-upload"),
    path("preview/", views.preview_view, name="preview"),
    path("nodes/<str:name>/", views.node_view, name="node"),
    path("<int:pk>/", views.post_detail_view, name="post-detail"),
    path("<int:pk>/edit/", views.post_edit_view, name="post-edit"),
    path("<int:pk>/delete/", views.post_delete_view, name="post-delete"),
    path("<int:pk>/history/", views.post_history_view, name="post-history"),
    path("<int:pk>/reply/", views.reply_create_view, name="reply-create"),
    path("<int:pk>/like/", views.post_like_view, name="post-like"),
    path("<int:pk>/moderate/", views.post_moderate_view, name="post-moderate"),
    path("<int:pk>/report/", views.post_report_view, name="post-report"),
    path("replies/<int:pk>/like/", views.reply_like_view, name="reply-like"),
    path("replies/<int:pk>/report/", views.reply_report_view, name="reply-report"),
    path("moderation/", views.moderation_queue_view, name="moderation"),
    path("moderation/<int:pk>/", views.report_resolve_view, name="report-resolve"),
    path("replies/<int:pk>/edit/", views.reply_edit_view, name="reply-edit"),
    path("replies/<int:pk>/delete/", views.reply_delete_view, name="reply-delete"),
    path("replies/<int:pk>/history/", views.reply_history_view, name="reply-history"),
]
