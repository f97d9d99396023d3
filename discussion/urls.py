"""Forum pages under /discuss/."""

from django.urls import path

from discussion import views

app_name = "discussion"

urlpatterns = [
    path("", views.post_list_view, name="post-list"),
    path("new/", views.post_create_view, name="post-create"),
    path("<int:pk>/", views.post_detail_view, name="post-detail"),
    path("<int:pk>/edit/", views.post_edit_view, name="post-edit"),
    path("<int:pk>/delete/", views.post_delete_view, name="post-delete"),
    path("<int:pk>/history/", views.post_history_view, name="post-history"),
    path("<int:pk>/reply/", views.reply_create_view, name="reply-create"),
    path("replies/<int:pk>/edit/", views.reply_edit_view, name="reply-edit"),
    path("replies/<int:pk>/delete/", views.reply_delete_view, name="reply-delete"),
    path("replies/<int:pk>/history/", views.reply_history_view, name="reply-history"),
]
