"""URL reversal for pages that link every row to the same few views by primary key.

Django's ``reverse()`` walks the resolver and quotes its arguments on every call (~25 µs); a list
page of 25 jobs reverses seven URLs per row, and the dashboard about a hundred (issue 19: a tenth
of their rendering time). ``reverse_pk`` reverses each view once with a sentinel key, keeps the
text around the key and fills in the real key afterwards: the same URL, for the cost of an
f-string. The cache is keyed by the script prefix and the URLconf in force, so a request with
another prefix (``FORCE_SCRIPT_NAME``, a proxy's ``SCRIPT_NAME``) or a test with another
``ROOT_URLCONF`` gets URLs of its own; a pattern where the sentinel does not appear exactly once
falls back to ``reverse()``.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse

# Large enough not to occur in a prefix or a route by accident; an ``<int:pk>`` converter takes it.
_SENTINEL = "8675309001234"


@functools.lru_cache(maxsize=256)
def _around_key(viewname: str, keyed: bool, prefix: str, urlconf: Any) -> tuple[str, str] | None:
    """The URL of ``viewname`` split around its one key argument (``keyed``; else the whole URL
    and ""), or None if the sentinel key does not appear exactly once."""
    if not keyed:
        return reverse(viewname, urlconf=urlconf), ""
    url = reverse(viewname, args=[_SENTINEL], urlconf=urlconf)
    if url.count(_SENTINEL) != 1:
        return None
    head, _sentinel, tail = url.partition(_SENTINEL)
    return head, tail


def reverse_pk(viewname: str, pk: int | None = None) -> str:
    """``reverse(viewname, args=[pk])`` for a view whose only argument is an integer key, or
    ``reverse(viewname)`` for one without arguments (``pk`` None)."""
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    around = _around_key(viewname, pk is not None, get_script_prefix(), urlconf)
    if around is None:
        return reverse(viewname, args=[pk])
    if pk is None:
        return around[0]
    return f"{around[0]}{int(pk)}{around[1]}"


@receiver(setting_changed)
def _forget_patterns(*, setting: str, **kwargs: Any) -> None:
    if setting in ("ROOT_URLCONF", "FORCE_SCRIPT_NAME"):
        _around_key.cache_clear()
