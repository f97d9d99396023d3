"""HAI Platform compatibility: HAI's own ``hai-cli`` and ``hfai`` library work against Rota unchanged.

A separate URL module (``apps/hai/urls.py``) serves HAI's paths (``/operating/…``, ``/query/…``,
``/ugc/…``) with HAI's conventions — POST with query parameters, ``?token=`` auth, the
``{"success": 1|0, "msg": …}`` envelope — and maps every call onto Rota's own services and
selectors: nothing here decides anything about jobs, quotas or tokens. ``presenters.py`` turns
Rota's objects into HAI's shapes (the task object, pods, quotas), ``taskschema.py`` turns a HAI
TaskSchema v2 into ``experiment_submit`` arguments, ``views.py`` holds the thin endpoints.
See ``docs/hai-compat.md``.
"""
