"""The API's JSON parser: a request body is one JSON object, nested at most ``MAX_DEPTH`` levels.

Every endpoint reads named fields from its body, so anything but an object (a list, a number, a
string) is refused as a ``parse_error`` 400 before a view sees it; views may rely on
``request.data`` being a mapping. Nesting is bounded too: a body of 1,000 nested arrays made the
standard parser raise ``RecursionError`` (a 500), and no endpoint takes more than a few levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True if ``value`` nests lists and objects more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONObjectParser(JSONParser):
    """``application/json`` bodies that are a JSON object at most ``MAX_DEPTH`` levels deep
    (``NaN`` and ``Infinity`` are refused as DRF's strict parser does)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from None
        if not isinstance(data, dict):
            raise ParseError(f"The request body must be a JSON object ({{...}}), not a {_json_type(data)}.")
        if _depth_exceeds(data, MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        return data


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
