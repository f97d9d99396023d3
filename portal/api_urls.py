"""REST API v1: each app contributes its ``api/urls.py``."""

from django.urls import include, path

urlpatterns: list = []
