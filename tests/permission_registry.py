"""Which API routes have a permission suite (route patterns as Django prints them)."""

from __future__ import annotations

COVERED: set[str] = {
    "api/v1/auth/token/",  # public by design: tests/accounts/test_tokens.py covers it
    "api/v1/me/",
    "api/v1/tokens/",
    "api/v1/tokens/<int:pk>/",
    "api/v1/admin/users/",
    "api/v1/admin/users/<int:pk>/",
    "api/v1/admin/users/<int:pk>/tokens/",
    "api/v1/node-groups/",
    "api/v1/nodes/",
    "api/v1/nodes/<str:name>/",
    "api/v1/environments/",
    "api/v1/admin/nodes/",
    "api/v1/admin/nodes/<str:name>/disable/",
    "api/v1/admin/nodes/<str:name>/enable/",
    "api/v1/quota/",
    "api/v1/admin/quotas/",
    "api/v1/admin/quotas/<int:pk>/",
    "api/v1/admin/audit/",
    "api/v1/experiments/",
    "api/v1/experiments/<str:key>/",
    "api/v1/experiments/<str:key>/stop/",
    "api/v1/experiments/<str:key>/suspend/",
    "api/v1/experiments/<str:key>/resume/",
    "api/v1/experiments/<str:key>/tags/",
    "api/v1/experiments/<str:key>/star/",
    "api/v1/experiments/<str:key>/priority/",
    "api/v1/experiments/<str:key>/share/",
    "api/v1/experiments/<str:key>/logs/",
    "api/v1/experiments/<str:key>/logs/search/",
    "api/v1/experiments/<str:key>/logs/download/",
    "api/v1/experiments/<str:key>/metrics/",
    "api/v1/job/status/",
    "api/v1/job/whole-life-state/",
    "api/v1/job/checkpoint/",
    "api/v1/job/go-suspend/",
    "api/v1/job/watchdog/",
    "api/v1/job/metrics/",
    "api/v1/job/priority/",  # tests/experiments/test_runtime_priority.py
    # tests/containers/test_api.py
    "api/v1/containers/",
    "api/v1/containers/quota/",
    "api/v1/containers/<str:key>/",
    "api/v1/containers/<str:key>/start/",
    "api/v1/containers/<str:key>/stop/",
    "api/v1/containers/<str:key>/restart/",
    "api/v1/containers/<str:key>/keep/",
    "api/v1/containers/<str:key>/services/<str:service>/restart/",
    "api/v1/containers/<str:key>/logs/",
}


def covered_routes() -> set[str]:
    return set(COVERED)
