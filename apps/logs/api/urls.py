from django.urls import path

from apps.logs.api import views

urlpatterns = [
    path("experiments/<str:key>/logs/", views.LogView.as_view(), name="api-experiment-logs"),
    path("experiments/<str:key>/logs/search/", views.LogSearchView.as_view(), name="api-experiment-log-search"),
    path("experiments/<str:key>/logs/download/", views.LogDownloadView.as_view(), name="api-experiment-log-download"),
]
