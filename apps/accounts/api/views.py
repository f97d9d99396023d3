"""API views for the current user, their tokens, and user administration. Thin: services do the work."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.api import serializers as s
from apps.accounts.choices import TokenScope
from apps.accounts.models import User
from apps.accounts.permissions import IsUserAdmin
from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError, NotFound


class LoginRateThrottle(AnonRateThrottle):
    scope = "login"


class MeView(APIView):
    """Who am I: the authenticated user, their groups and the scope of the token used."""

    @extend_schema(responses=s.MeSerializer)
    def get(self, request: AuthedRequest) -> Response:
        return Response(s.MeSerializer(request.user, context={"request": request}).data)


class TokenListCreateView(generics.ListAPIView):
    """My API tokens (active ones; `?include_revoked=1` for all). POST creates one and shows it once."""

    serializer_class = s.TokenSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.serializer_class.Meta.model.objects.none()
        include = self.request.query_params.get("include_revoked") in {"1", "true", "yes"}
        return selectors.tokens_of(user=self.request.user, include_revoked=include)  # type: ignore[arg-type]

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = s.TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.token_create(actor=request.user, **data.validated_data)
        body = s.TokenSerializer(issued.token).data | {"token": issued.raw}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    """One of my tokens; DELETE revokes it (any token may revoke itself, even a read-only one)."""

    allows_self_revoke = True

    @extend_schema(responses=s.TokenSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        token = selectors.token_get_for_owner(user=request.user, token_id=pk)
        if token is None:
            raise NotFound(_("No such token."))
        return Response(s.TokenSerializer(token).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        token = selectors.token_get_for_owner(user=request.user, token_id=pk)
        if token is None:
            raise NotFound(_("No such token."))
        services.token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AdminUserListCreateView(generics.ListAPIView):
    """All users (root admins). POST creates a user, optionally issuing a token shown once."""

    permission_classes = [IsUserAdmin]
    serializer_class = s.AdminUserSerializer
    filterset_fields = ["role", "is_active"]
    search_fields = ["username", "nickname"]

    def get_queryset(self) -> Any:
        qs = selectors.users_list()
        q = self.request.query_params.get("q")
        if q:
            qs = qs.filter(username__icontains=q)
        return qs

    @extend_schema(request=s.AdminUserCreateSerializer, responses={201: s.AdminUserSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = s.AdminUserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        issue_token = values.pop("issue_token")
        user = services.user_create(actor=request.user, **values)
        body = dict(s.AdminUserSerializer(user).data)
        if issue_token:
            issued = services.token_create(actor=request.user, user=user, name="issued at creation")
            body["token"] = issued.raw
        return Response(body, status=status.HTTP_201_CREATED)


class AdminUserDetailView(APIView):
    permission_classes = [IsUserAdmin]

    @extend_schema(responses=s.AdminUserSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(s.AdminUserSerializer(get_object_or_404(selectors.users_list(), pk=pk)).data)

    @extend_schema(request=s.AdminUserUpdateSerializer, responses=s.AdminUserSerializer)
    def patch(self, request: AuthedRequest, pk: int) -> Response:
        user = get_object_or_404(User, pk=pk)
        data = s.AdminUserUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.user_update(actor=request.user, user=user, **data.validated_data)
        return Response(s.AdminUserSerializer(user).data)


class AdminUserTokenCreateView(APIView):
    """Issue a token for another user (root admins; recorded in the audit log)."""

    permission_classes = [IsUserAdmin]

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    def post(self, request: AuthedRequest, pk: int) -> Response:
        user = get_object_or_404(User, pk=pk)
        data = s.TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.token_create(actor=request.user, user=user, **data.validated_data)
        return Response(s.TokenSerializer(issued.token).data | {"token": issued.raw}, status=status.HTTP_201_CREATED)


class LoginTokenSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    name = serializers.CharField(max_length=100, default="rota cli")
    scope = serializers.ChoiceField(
        choices=[TokenScope.ALL, TokenScope.EXCEPT_JUPYTER, TokenScope.READ_ONLY], default=TokenScope.ALL
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class LoginTokenView(APIView):
    """Exchange a user name and password for a new API token (what `rota login` does).

    The token is shown once. Wrong credentials get 400 `invalid_credentials`; requests from one
    address are rate-limited, and after too many failures an account or address is refused
    (429, with `Retry-After`) for a while, even with the right password.
    """

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]

    @extend_schema(request=LoginTokenSerializer, responses={201: s.IssuedTokenSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = LoginTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        # django-axes counts this through authenticate(); once locked, its middleware answers 429.
        user = authenticate(request._request, username=values["username"], password=values["password"])
        if user is None or not user.is_active:
            raise ApplicationError(_("Wrong user name or password."), code="invalid_credentials")
        issued = services.token_create(
            actor=user, name=values["name"], scope=values["scope"], expires_at=values["expires_at"]
        )
        return Response(s.TokenSerializer(issued.token).data | {"token": issued.raw}, status=status.HTTP_201_CREATED)
