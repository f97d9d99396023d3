"""Users and API tokens.

Groups are Django's own ``auth.Group``: one table serves as teams (a user's ``team`` is their shared
group), as quota subjects (``public``, ``internal`` …) and as permission groups (``root``,
``cluster_manager``, ``ops``, ``quota_editor``, ``forum_admin`` …, see ``choices.AdminGroup``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.choices import AdminGroup, Role, TokenScope

#: POSIX ids admins may give users: below 1000 are system accounts on every common distribution,
#: and 2**31-1 is the largest id that every kernel, filesystem and NFS server treats as valid.
POSIX_ID_MIN = 1000
POSIX_ID_MAX = 2**31 - 1


class User(AbstractUser):
    """A person who uses the cluster (researcher) or runs it (admin, through groups).

    ``posix_uid``/``posix_gid`` are the user's account on the cluster's shared storage, set by
    admins: job containers run as them so files written to shared storage belong to the person.
    """

    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.INTERNAL)
    nickname = models.CharField(_("nickname"), max_length=150, blank=True)
    team = models.ForeignKey(
        Group,
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="team_members",
        help_text=_("The shared group: jobs shared with the team are visible to its members."),
    )
    posix_uid = models.PositiveIntegerField(
        _("POSIX uid"),
        null=True,
        blank=True,
        unique=True,
        validators=[MinValueValidator(POSIX_ID_MIN), MaxValueValidator(POSIX_ID_MAX)],
        help_text=_("The user's numeric id on the cluster's shared storage; jobs run as it."),
    )
    posix_gid = models.PositiveIntegerField(
        _("POSIX gid"),
        null=True,
        blank=True,
        validators=[MinValueValidator(POSIX_ID_MIN), MaxValueValidator(POSIX_ID_MAX)],
        help_text=_("The user's primary group id on the cluster's shared storage."),
    )

    class Meta:
        ordering = ["username"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(posix_uid__isnull=True)
                | models.Q(posix_uid__gte=POSIX_ID_MIN, posix_uid__lte=POSIX_ID_MAX),
                name="user_posix_uid_range",
            ),
            models.CheckConstraint(
                condition=models.Q(posix_gid__isnull=True)
                | models.Q(posix_gid__gte=POSIX_ID_MIN, posix_gid__lte=POSIX_ID_MAX),
                name="user_posix_gid_range",
            ),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def display_name(self) -> str:
        return self.nickname or self.username

    def group_names(self) -> set[str]:
        """Names of the user's groups and of their team (cached per instance: one query)."""
        cached: set[str] | None = getattr(self, "_group_names_cache", None)
        if cached is None:
            # One query for both (the team used to cost a second one on every page of a team member).
            mine = models.Q(user=self) if self.team_id is None else models.Q(user=self) | models.Q(pk=self.team_id)
            cached = set(Group.objects.filter(mine).values_list("name", flat=True).distinct())
            self._group_names_cache = cached
        return cached

    def in_admin_group(self, *groups: AdminGroup | str) -> bool:
        """True for superusers, members of ``root`` and members of any of ``groups``."""
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        names = self.group_names()
        return AdminGroup.ROOT.value in names or any(str(g) in names for g in groups)

    @property
    def is_platform_admin(self) -> bool:
        """May see every job and act on it (root, ops, task_admin)."""
        return self.in_admin_group(AdminGroup.OPS, AdminGroup.TASK_ADMIN)


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token for the API and CLI.

    The secret is shown once, at creation; only its SHA-256 digest is stored, plus a short
    ``prefix`` in clear so a presented token is found with one indexed lookup. Tokens are random
    (192 bits), so a fast digest is safe here, unlike passwords.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    scope = models.CharField(_("scope"), max_length=20, choices=TokenScope.choices, default=TokenScope.ALL)
    attempt_id = models.BigIntegerField(
        null=True, blank=True, help_text=_("For job tokens: the attempt the token is scoped to.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Who issued it, when not the owner (an admin)."),
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "revoked_at"]), models.Index(fields=["attempt_id"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired
