"""The layers of docs/architecture.md hold: no module imports from a layer above its own, and no
domain module imports an edge (API views, consumers, page views). The contracts are in
pyproject.toml (``[tool.importlinter]``); this runs them as part of the suite."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_lifecycle_changes_take_keyword_arguments_only():
    """As the services do: ``attempt_mark_finished(attempt_id=..., status=...)`` reads the same at every
    caller. What stays positional in ``lifecycle`` only reads (``chain_audience(chain)``)."""
    from apps.experiments import lifecycle

    positional = {
        name: [
            p.name
            for p in inspect.signature(f).parameters.values()
            if p.kind is not p.KEYWORD_ONLY and p.kind is not p.VAR_KEYWORD
        ]
        for name, f in vars(lifecycle).items()
        if inspect.isfunction(f) and f.__module__ == lifecycle.__name__ and not name.startswith("_")
    }
    assert {name: args for name, args in positional.items() if args} == {
        "sources_of": ["target"],
        "chain_status_for": ["chain", "attempt"],
        "chain_audience": ["chain"],
        "shared_chain_teams": ["chain_ids"],
    }


def test_the_scheduling_policy_imports_no_django():
    """``plan()`` runs in the simulator and the benchmarks without Django; the rules it shares with the
    submit service (``apps/experiments/feasibility.py``) are plain Python too."""
    code = (
        "import sys, apps.scheduler.policy; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'channels'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
