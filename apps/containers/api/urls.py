from django.urls import path

from apps.containers.api import views

urlpatterns = [
    path("containers/", views.ContainerListCreateView.as_view(), name="api-containers"),
    path("containers/quota/", views.ContainerQuotaView.as_view(), name="api-container-quota"),
    path("containers/<str:key>/", views.ContainerDetailView.as_view(), name="api-container-detail"),
    path("containers/<str:key>/start/", views.StartView.as_view(), name="api-container-start"),
    path("containers/<str:key>/stop/", views.StopView.as_view(), name="api-container-stop"),
    path("containers/<str:key>/restart/", views.RestartView.as_view(), name="api-container-restart"),
    path("containers/<str:key>/keep/", views.KeepView.as_view(), name="api-container-keep"),
    path(
        "containers/<str:key>/services/<str:service>/restart/",
        views.ServiceRestartView.as_view(),
        name="api-container-service-restart",
    ),
    path("containers/<str:key>/logs/", views.ContainerLogsView.as_view(), name="api-container-logs"),
]
