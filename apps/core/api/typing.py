"""Typing help for API views: behind our permission classes ``request.user`` is a real ``User``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request

if TYPE_CHECKING:
    from apps.accounts.models import User

    class AuthedRequest(Request):
        user: User

else:
    AuthedRequest = Request

__all__ = ["AuthedRequest"]
