from __future__ import annotations

from rest_framework import serializers

from apps.accounts.choices import Role, TokenScope
from apps.accounts.models import ApiToken, User


class MeSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", default=None, read_only=True)
    groups = serializers.SerializerMethodField()
    is_admin = serializers.SerializerMethodField()
    token_scope = serializers.SerializerMethodField()
    token_id = serializers.SerializerMethodField()
    token_prefix = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "nickname",
            "email",
            "role",
            "team",
            "groups",
            "is_active",
            "posix_uid",
            "posix_gid",
            "is_admin",
            "token_scope",
            "token_id",
            "token_prefix",
        ]

    def get_groups(self, obj: User) -> list[str]:
        return sorted(obj.group_names())

    def get_is_admin(self, obj: User) -> bool:
        return obj.is_platform_admin

    def _token(self) -> ApiToken | None:
        token = getattr(self.context.get("request"), "auth", None)
        return token if isinstance(token, ApiToken) else None

    def get_token_scope(self, obj: User) -> str | None:
        token = self._token()
        return token.scope if token else None

    def get_token_id(self, obj: User) -> int | None:
        """The id of the token this request used (so a client can revoke it on logout)."""
        token = self._token()
        return token.pk if token else None

    def get_token_prefix(self, obj: User) -> str | None:
        token = self._token()
        return token.prefix if token else None


class TokenSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(
        choices=[TokenScope.ALL, TokenScope.EXCEPT_JUPYTER, TokenScope.READ_ONLY], default=TokenScope.ALL
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class IssuedTokenSerializer(TokenSerializer):
    token = serializers.CharField(help_text="The secret. Shown once: store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class AdminUserSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", default=None, allow_null=True, required=False)
    groups: serializers.Field = serializers.SlugRelatedField(many=True, slug_field="name", read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "nickname",
            "email",
            "role",
            "team",
            "groups",
            "is_active",
            "posix_uid",
            "posix_gid",
            "date_joined",
            "last_login",
        ]
        read_only_fields = ["id", "date_joined", "last_login"]


class AdminUserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        required=False, allow_blank=True, write_only=True, style={"input_type": "password"}
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.INTERNAL)
    nickname = serializers.CharField(required=False, allow_blank=True, default="")
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    team = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)
    groups = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    is_active = serializers.BooleanField(default=True)
    issue_token = serializers.BooleanField(default=False, help_text="Issue an API token and return it once.")


class AdminUserUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    nickname = serializers.CharField(required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    team = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    groups = serializers.ListField(child=serializers.CharField(), required=False)
    is_active = serializers.BooleanField(required=False)
    password = serializers.CharField(required=False, write_only=True, style={"input_type": "password"})
    posix_uid = serializers.IntegerField(
        required=False, allow_null=True, help_text="1000..2**31-1, unique; null clears it."
    )
    posix_gid = serializers.IntegerField(required=False, allow_null=True, help_text="1000..2**31-1; null clears it.")
