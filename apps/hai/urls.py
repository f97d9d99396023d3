"""HAI's paths, mounted at the site root (HAI's client appends them to the configured URL).

Everything under ``operating/``, ``query/``, ``ugc/`` and ``monitor_v2/`` is HAI's: a path not
served answers HAI's error envelope. ``/monitor/`` belongs to Rota's admin pages; only the two
``monitor/`` paths HAI's library calls are answered here.
"""

from __future__ import annotations

from functools import partial

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from apps.hai import views

UNSUPPORTED = {
    "query/task/container_log": "Rota keeps no container logs apart from the job's own log: use `hai-cli logs`.",
    "operating/rerun_task": "Rota has no rerun; resume a stopped job, or submit it again.",
    "operating/task/haiprof": "Rota does not run haiprof profiling.",
    "ugc/swap_memory": "Rota does not manage swap memory.",
    "ugc/update_cluster_venv": "Rota does not manage cluster virtual environments.",
    "query/task/ssh_ip": "Rota does not give ssh access to ranks.",
    "operating/task/artifact/map": "Rota has no artifacts.",
    "operating/task/artifact/unmap": "Rota has no artifacts.",
    "query/task/artifact/get": "Rota has no artifacts.",
    "query/task/artifact/list": "Rota has no artifacts.",
    "query/user/artifact/get": "Rota has no artifacts.",
    "operating/user/artifact/createupdate": "Rota has no artifacts.",
    "operating/user/artifact/delete": "Rota has no artifacts.",
    "ugc/user/nodeport/create": "Rota does not expose node ports.",
    "ugc/user/nodeport/delete": "Rota does not expose node ports.",
    "query/user/nodeport/list": "Rota does not expose node ports.",
    "operating/user/training_quota/update": "In Rota quotas are set by admins: ask one (or see `hai-cli whoami`).",
    # HAI's monitor server (the client's calls; /monitor/ itself is Rota's admin pages)
    "monitor/task/chain_perf_series": "Rota has no performance series here: see the job's metrics in the portal.",
    "monitor/user/storage/list": "Rota does not report personal storage.",
}

app_name = "hai"
urlpatterns = [
    path("operating/user/access_token/create", views.access_token_create, name="access-token-create"),
    path("query/user/access_token/list", views.access_token_list, name="access-token-list"),
    path("query/user/info", views.user_info, name="user-info"),
    path("query/user/quota/list", views.quota_list, name="quota-list"),
    path("query/user/training_quota/get_used", views.training_quota_used, name="training-quota-used"),
    path("query/node/list", views.node_list, name="node-list"),
    path("ugc/user/train_image/list", views.train_image_list, name="train-image-list"),
    path("operating/task/create", views.task_create, name="task-create"),
    path("query/task", views.task_get, name="task"),
    path("query/task/list", views.task_list, name="task-list"),
    path("query/task/log", views.task_log, name="task-log"),
    path("query/task/sys_log", views.task_sys_log, name="task-sys-log"),
    path("query/task/log/search", views.task_log_search, name="task-log-search"),
    path("operating/task/stop", views.task_stop, name="task-stop"),
    path("operating/task/suspend", views.task_suspend, name="task-suspend"),
    path("operating/task/resume", views.task_resume, name="task-resume"),
    path("operating/task/priority/update", views.task_priority, name="task-priority"),
    path("operating/task/tag", views.task_tag, name="task-tag"),
    path("operating/task/untag", views.task_untag, name="task-untag"),
    *[
        path(route, csrf_exempt(partial(views.unsupported, what=message)), name=f"unsupported-{i}")
        for i, (route, message) in enumerate(UNSUPPORTED.items())
    ],
    re_path(r"^(?P<path>(?:operating|query|ugc|monitor_v2)/.*)$", csrf_exempt(views.not_served), name="not-served"),
]
