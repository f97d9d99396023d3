"""Safe placeholder expansion for mount paths: ``{user.username}``, ``{task.chain_id}`` …

Only the names in ``ALLOWED`` exist; anything else is an error at the time the rule is saved. There
is no attribute access, indexing or evaluation: a placeholder is looked up in a flat dict.
"""

from __future__ import annotations

import re

ALLOWED = frozenset(
    {
        "user.username",
        "user.id",
        "user.role",
        "user.team",
        "task.id",
        "task.chain_id",
        "task.name",
        "task.type",
        "task.group",
        "task.environment",
    }
)
CONDITION_KEYS = frozenset({"role", "task_type", "group", "environment", "team", "username"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.\-]*$")


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def validate_template(template: str) -> list[str]:
    """Problems with a template, as messages (empty = fine)."""
    problems = []
    for name in placeholders(template):
        if name not in ALLOWED:
            problems.append(f"unknown placeholder {{{name}}}; allowed: " + ", ".join(sorted(ALLOWED)))
    if template.count("{") != template.count("}"):
        problems.append("unbalanced braces")
    return problems


def expand(template: str, context: dict[str, str]) -> str:
    """Expand placeholders from ``context``. Values must be path-safe (no '/', no '..')."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in ALLOWED:
            raise ValueError(f"unknown placeholder {{{name}}}")
        value = str(context.get(name, ""))
        if not value or not _SAFE_VALUE.match(value) or value in {".", ".."}:
            raise ValueError(f"placeholder {{{name}}} has no safe value here ({value!r})")
        return value

    return _PLACEHOLDER.sub(replace, template)


def validate_conditions(conditions: object) -> list[str]:
    if not isinstance(conditions, dict):
        return ["conditions must be a table of key = value"]
    problems = []
    for key, value in conditions.items():
        if key not in CONDITION_KEYS:
            problems.append(f"unknown condition {key!r}; allowed: " + ", ".join(sorted(CONDITION_KEYS)))
        if not isinstance(value, (str, list)):
            problems.append(f"condition {key!r} must be a string or a list of strings")
    return problems


def conditions_match(conditions: dict[str, object], facts: dict[str, str]) -> bool:
    """Every condition holds: equal to the fact, or the fact is in the listed values."""
    for key, expected in conditions.items():
        actual = facts.get(key, "")
        if isinstance(expected, list):
            if actual not in [str(v) for v in expected]:
                return False
        elif actual != str(expected):
            return False
    return True
