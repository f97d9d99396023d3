"""Every pass name (``apps.core.passes``) resolves to a function the task runner can call, and no
module spells a pass by its string instead of the constant."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from django.utils.module_loading import import_string

from apps.core import passes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", passes.ALL)
def test_each_pass_name_resolves_to_a_function(name):
    assert inspect.isfunction(import_string(name)), name


def test_all_lists_every_name_defined():
    defined = {value for key, value in vars(passes).items() if key.isupper() and isinstance(value, str)}
    assert defined == set(passes.ALL)
    assert len(passes.ALL) == len(set(passes.ALL))


def test_no_module_spells_a_pass_name_as_a_string():
    offenders = []
    for folder in ("apps", "portal", "monitor", "discussion"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "apps" / "core" / "passes.py":
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in passes.ALL if f'"{name}"' in text]
    assert offenders == []
