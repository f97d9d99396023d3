"""The names of the background passes, defined once.

Services sit below the scheduler and the launcher, so they never import them: they enqueue a pass
by its dotted name after commit (``enqueue_on_commit(SCHEDULE)``, ``apps.core.tasks``). The names
live here, in the lowest layer, so every caller spells them the same way;
``tests/core/test_passes.py`` checks that each one resolves to a function.
"""

from __future__ import annotations

SCHEDULE = "apps.scheduler.tasks.schedule_pass"
"""A scheduling pass: start, suspend and explain waiting jobs."""

RECONCILE = "apps.launcher.tasks.reconcile_pass"
"""A reconcile pass over jobs: bring the backend in line with the database."""

CONTAINER_RECONCILE = "apps.launcher.tasks.container_reconcile_pass"
"""A reconcile pass over development containers."""

KEEP_OWNERSHIP = "apps.launcher.tasks.keep_ownership"
"""The worker's keeper of the cluster-owner lease (runs until told to stop)."""

RELEASE_OWNERSHIP = "apps.launcher.tasks.release_ownership"
"""Give the cluster-owner lease up at shutdown, so a standby takes over at once."""

ALL = (SCHEDULE, RECONCILE, CONTAINER_RECONCILE, KEEP_OWNERSHIP, RELEASE_OWNERSHIP)
