"""Portal models: admin notices shown on the dashboard, and each user's display preferences."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.web.choices import NoticeAudience, NoticeSeverity, Theme


class Notice(models.Model):
    """A message from the admins (maintenance, incidents, news) for everyone, a group or one user.

    It shows on the dashboard of its audience between ``starts_at`` and ``expires_at``. The body is
    plain text (escaped when shown; blank lines make paragraphs), never HTML.
    """

    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), blank=True)
    severity = models.CharField(
        _("severity"), max_length=16, choices=NoticeSeverity.choices, default=NoticeSeverity.INFO
    )
    audience = models.CharField(_("audience"), max_length=8, choices=NoticeAudience.choices, default=NoticeAudience.ALL)
    group = models.ForeignKey(
        Group,
        verbose_name=_("group"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notices",
        help_text=_("For the audience “members of a group” (a team counts as a group)."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notices",
        help_text=_("For the audience “one user”."),
    )
    starts_at = models.DateTimeField(_("shown from"), default=timezone.now)
    expires_at = models.DateTimeField(_("shown until"), null=True, blank=True, help_text=_("Empty: until deleted."))
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(audience=NoticeAudience.ALL) & Q(group__isnull=True) & Q(user__isnull=True))
                | (Q(audience=NoticeAudience.GROUP) & Q(group__isnull=False) & Q(user__isnull=True))
                | (Q(audience=NoticeAudience.USER) & Q(user__isnull=False) & Q(group__isnull=True)),
                name="notice_audience_matches_target",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("starts_at")),
                name="notice_expires_after_start",
            ),
        ]
        indexes = [models.Index(fields=["audience", "starts_at"])]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.audience == NoticeAudience.GROUP and self.group_id is None:
            errors["group"] = _("Choose the group this notice is for.")
        if self.audience == NoticeAudience.USER and self.user_id is None:
            errors["user"] = _("Choose the user this notice is for.")
        if self.audience != NoticeAudience.GROUP and self.group_id is not None:
            errors["group"] = _("Only a notice for a group names a group.")
        if self.audience != NoticeAudience.USER and self.user_id is not None:
            errors["user"] = _("Only a notice for one user names a user.")
        if self.expires_at is not None and self.starts_at is not None and self.expires_at <= self.starts_at:
            errors["expires_at"] = _("The notice must end after it starts.")
        if errors:
            raise ValidationError(errors)


class UserPreference(models.Model):
    """How one user likes the portal: language and theme (remembered across devices)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference", verbose_name=_("user")
    )
    language = models.CharField(
        _("language"),
        max_length=16,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: the browser's language."),
    )
    theme = models.CharField(_("theme"), max_length=8, choices=Theme.choices, default=Theme.SYSTEM)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return f"{self.user}: {self.language or '-'} / {self.theme}"
