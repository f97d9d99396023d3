"""``manage.py rota_worker``: the scheduler and launcher safety-net loops (production)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.core import passes
from apps.core.loops import PASSES, loop
from apps.core.tasks import run_now


class Command(BaseCommand):
    help = "Run the periodic scheduling and reconcile passes until interrupted (safe to run several)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", choices=sorted(PASSES), help="run one kind of pass only")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        names = [options["only"]] if options["only"] else list(PASSES)
        threads = [threading.Thread(target=loop, args=(n, stop), name=f"rota-{n}") for n in names]
        for thread in threads:
            thread.start()
        self.stdout.write(f"rota_worker running: {', '.join(names)} (Ctrl-C to stop)")
        if "launcher" in names:
            # By name (apps.core sits below the launcher): renew the cluster-owner lease between
            # passes too, so a long pass never lets it lapse.
            run_now(passes.KEEP_OWNERSHIP, stop)
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
        if "launcher" in names:
            run_now(passes.RELEASE_OWNERSHIP)  # a standby takes over at once
