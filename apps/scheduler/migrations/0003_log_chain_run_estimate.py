# Written by hand on 2026-12-03: the snapshot reads the chain's run-time estimate, so its change is logged too.

import importlib

from django.db import migrations

_initial = importlib.import_module("apps.scheduler.migrations.0002_snapshotchange")

CHAIN_COLUMNS = (*_initial.CHAIN_COLUMNS, "run_estimate_seconds")
TABLES = tuple(
    (table, names, CHAIN_COLUMNS if table == "experiments_chain" else columns)
    for table, names, columns in _initial.TABLES
)


def _recreate(tables):
    def run(apps, schema_editor):
        _initial.drop_triggers(apps, schema_editor)
        saved = _initial.TABLES
        _initial.TABLES = tables
        try:
            _initial.create_triggers(apps, schema_editor)
        finally:
            _initial.TABLES = saved

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("scheduler", "0002_snapshotchange"),
        ("experiments", "0010_chain_run_estimate"),
    ]

    operations = [migrations.RunPython(_recreate(TABLES), _recreate(_initial.TABLES))]
