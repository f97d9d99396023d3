from django.urls import path

from apps.experiments.api import views

urlpatterns = [
    path("experiments/", views.ExperimentListCreateView.as_view(), name="api-experiments"),
    path("experiments/<str:key>/", views.ExperimentDetailView.as_view(), name="api-experiment-detail"),
    path("experiments/<str:key>/stop/", views.StopView.as_view(), name="api-experiment-stop"),
    path("experiments/<str:key>/suspend/", views.SuspendView.as_view(), name="api-experiment-suspend"),
    path("experiments/<str:key>/resume/", views.ResumeView.as_view(), name="api-experiment-resume"),
    path("experiments/<str:key>/tags/", views.TagView.as_view(), name="api-experiment-tags"),
    path("experiments/<str:key>/star/", views.StarView.as_view(), name="api-experiment-star"),
    path("experiments/<str:key>/priority/", views.PriorityView.as_view(), name="api-experiment-priority"),
    path("experiments/<str:key>/share/", views.ShareView.as_view(), name="api-experiment-share"),
    path("experiments/<str:key>/metrics/", views.MetricsSeriesView.as_view(), name="api-experiment-metrics"),
]

from apps.experiments.api import runtime  # noqa: E402

urlpatterns += [
    path("job/status/", runtime.JobStatusView.as_view(), name="api-job-status"),
    path("job/whole-life-state/", runtime.WholeLifeStateView.as_view(), name="api-job-state"),
    path("job/checkpoint/", runtime.CheckpointView.as_view(), name="api-job-checkpoint"),
    path("job/go-suspend/", runtime.GoSuspendView.as_view(), name="api-job-go-suspend"),
    path("job/watchdog/", runtime.WatchdogView.as_view(), name="api-job-watchdog"),
    path("job/metrics/", runtime.MetricsView.as_view(), name="api-job-metrics"),
    path("job/priority/", runtime.JobPriorityView.as_view(), name="api-job-priority"),
]
