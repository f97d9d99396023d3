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
]
