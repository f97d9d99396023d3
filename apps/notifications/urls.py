"""Notification pages under /notifications/."""

from django.urls import path

from apps.notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.notification_list_view, name="list"),
    path("read/", views.notification_read_view, name="read"),
    path("unread/", views.unread_count_view, name="unread"),
    path("settings/", views.preferences_view, name="preferences"),
]
