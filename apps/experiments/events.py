"""Typed realtime events of experiments. Unknown fields are rejected at construction."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class ChainStatusChanged:
    type: str = field(default="chain.status", init=False)
    chain_id: int
    attempt_id: int | None
    status: str
    worker_status: str
    restart_count: int
    owner_id: int


@dataclass(frozen=True, kw_only=True)
class ChainVisibilityChanged:
    """Who may see the chain changed (unshared): consumers re-check their subscriptions and log
    follows of it and drop what the user may no longer see. Not forwarded to clients."""

    type: str = field(default="chain.visibility", init=False)
    chain_id: int


@dataclass(frozen=True, kw_only=True)
class AttemptStarted:
    type: str = field(default="attempt.started", init=False)
    chain_id: int
    attempt_id: int
    nodes: list[str]


@dataclass(frozen=True, kw_only=True)
class AttemptSuspended:
    type: str = field(default="attempt.suspended", init=False)
    chain_id: int
    attempt_id: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class AttemptFinished:
    type: str = field(default="attempt.finished", init=False)
    chain_id: int
    attempt_id: int
    worker_status: str
    stop_reason: str
    exit_code: int | None


@dataclass(frozen=True, kw_only=True)
class ExplanationChanged:
    type: str = field(default="chain.explanation", init=False)
    chain_id: int
    attempt_id: int
    code: str
    message: str
    queue_position: int | None


@dataclass(frozen=True, kw_only=True)
class QuotaUsageChanged:
    type: str = field(default="quota.usage", init=False)
    user_id: int
