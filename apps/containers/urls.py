from django.urls import path

from apps.containers import views

app_name = "containers"

# Only one-segment paths: two-segment paths (/containers/<user>/<name>/) are the
# reverse proxy to the containers' servers (portal/routing.py).
urlpatterns = [
    path("", views.container_list_view, name="list"),
    path("<int:pk>/", views.container_detail_view, name="detail"),
    # The containers' Ingress (Kubernetes, apps.containers.ingress): nginx's auth check, its
    # sign-in (portal host) and the ticket hand-off (containers host).
    path("auth/", views.container_ingress_auth_view, name="ingress-auth"),
    path("ticket/", views.container_ingress_ticket_view, name="ingress-ticket"),
    path("enter/", views.container_ingress_enter_view, name="ingress-enter"),
]
