"""``manage.py rota_bootstrap FILE``: declare the cluster (see ``apps.quotas.bootstrap``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.quotas.bootstrap import BootstrapError, apply_file


class Command(BaseCommand):
    help = "Create or update node groups, nodes, environments, mounts, users and quotas from a TOML/YAML file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="cluster description (.toml, .yaml or .yml)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = apply_file(options["file"])
        except BootstrapError as exc:
            raise CommandError(str(exc)) from exc
        summary = ", ".join(f"{n} {section}" for section, n in result.counts.items()) or "nothing"
        self.stdout.write(f"Applied {options['file']}: {summary}; {result.changes} change(s).")
