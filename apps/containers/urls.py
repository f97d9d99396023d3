from django.urls import path

from apps.containers import views

app_name = "containers"

# Only /containers/ and /containers/<id>/ : two-segment paths (/containers/<user>/<name>/) are the
# reverse proxy to the containers' servers (portal/routing.py).
urlpatterns = [
    path("", views.container_list_view, name="list"),
    path("<int:pk>/", views.container_detail_view, name="detail"),
]
