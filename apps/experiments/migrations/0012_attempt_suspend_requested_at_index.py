# Written by hand on 2026-12-03: the scheduler overview lists the last day's preemptions by the time
# a suspension was asked for; without an index that was a scan of every attempt (docs/PERFORMANCE.md).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0011_chain_owner_unfinished_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(
                condition=models.Q(("suspend_requested_at__isnull", False)),
                fields=["suspend_requested_at"],
                name="attempt_suspend_requested_at",
            ),
        ),
    ]
