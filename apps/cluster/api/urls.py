from django.urls import path

from apps.cluster.api import views

urlpatterns = [
    path("node-groups/", views.NodeGroupListView.as_view(), name="api-node-groups"),
    path("nodes/", views.NodeListView.as_view(), name="api-nodes"),
    path("nodes/<str:name>/", views.NodeDetailView.as_view(), name="api-node-detail"),
    path("environments/", views.EnvironmentListView.as_view(), name="api-environments"),
    path("admin/nodes/", views.AdminNodeCreateView.as_view(), name="api-admin-nodes"),
    path("admin/nodes/<str:name>/disable/", views.AdminNodeDisableView.as_view(), name="api-admin-node-disable"),
    path("admin/nodes/<str:name>/enable/", views.AdminNodeEnableView.as_view(), name="api-admin-node-enable"),
]
