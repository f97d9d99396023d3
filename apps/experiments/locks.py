"""Row locks on chains, one spelling for every caller.

Locks are taken in one order everywhere: the chain, then its attempts and ranks. Services lock the
chain to check its state before they change an attempt; every other path that changes an attempt
(and then recomputes the chain) does the same, or a user's stop and a launcher pass could each hold
one row and wait for the other (a deadlock PostgreSQL breaks by failing one of them;
``tests/experiments/test_lock_order.py`` reproduces it). Several chains are locked in id order, so
two passes locking overlapping sets cannot deadlock either. See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

from apps.experiments.models import Chain

_CHAINS_LOCKED_FOR: ContextVar[frozenset[int]] = ContextVar("chains_locked_for", default=frozenset())
"""Attempts whose chains the current transaction already locked in bulk (``chains_locked``)."""


def lock_chain(chain_id: int, *, with_latest_attempt: bool = False) -> Chain:
    """Inside a transaction, lock one chain row (``SELECT … FOR UPDATE`` of the chain only) and
    return it fresh; ``with_latest_attempt`` also loads its latest attempt (not locked)."""
    rows = Chain.objects.select_for_update(of=("self",))
    if with_latest_attempt:
        rows = rows.select_related("latest_attempt")
    return rows.get(pk=chain_id)


def lock_chains(chain_ids: Iterable[int]) -> list[int]:
    """Inside a transaction, lock several chain rows in one query, in id order; the ids found."""
    return list(
        Chain.objects.select_for_update(of=("self",))
        .filter(pk__in=sorted(set(chain_ids)))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def lock_chain_of(attempt_id: int) -> None:
    """Inside a transaction, lock the attempt's chain row before the attempt is changed.

    Skipped when ``chains_locked`` already holds it, and outside a transaction (an update is then
    its own transaction, holding nothing else: no lock needed)."""
    if attempt_id not in _CHAINS_LOCKED_FOR.get() and transaction.get_connection().in_atomic_block:
        list(Chain.objects.select_for_update(of=("self",)).filter(attempts__pk=attempt_id).values_list("pk"))


@contextmanager
def chains_locked(chain_of: dict[int, int]) -> Iterator[None]:
    """Lock the chains of many attempts at once (``lock_chains``), for a caller about to change
    them all in this transaction (the scheduler's pass): ``lock_chain_of`` then skips them.
    ``chain_of`` maps attempt id → chain id."""
    if not chain_of:
        yield
        return
    lock_chains(chain_of.values())
    token = _CHAINS_LOCKED_FOR.set(_CHAINS_LOCKED_FOR.get() | frozenset(chain_of))
    try:
        yield
    finally:
        _CHAINS_LOCKED_FOR.reset(token)
