# Written by hand on 2026-12-03: per node group and minute, the load a scheduling pass left (issue 16's charts).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("scheduler", "0003_log_chain_run_estimate"),
        ("cluster", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="LoadSample",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "minute",
                    models.BigIntegerField(help_text="Minutes since the Unix epoch (UTC): when the sample was taken."),
                ),
                ("nodes", models.PositiveIntegerField(default=0)),
                ("used", models.PositiveIntegerField(default=0)),
                ("free", models.PositiveIntegerField(default=0)),
                ("gpus", models.PositiveIntegerField(default=0)),
                ("gpus_used", models.PositiveIntegerField(default=0)),
                ("running", models.PositiveIntegerField(default=0)),
                ("waiting", models.PositiveIntegerField(default=0)),
                ("levels", models.JSONField(default=dict)),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="cluster.nodegroup"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("minute", "group"), name="load_sample_once_a_minute")
                ],
            },
        ),
    ]
