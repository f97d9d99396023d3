"""Images in posts: checked by their first bytes (not by the name or the browser's word), size-
limited, stored under ``MEDIA_ROOT/discussion/YYYY/MM/<random>.<ext>``, served back only as the
image type they were found to be, with ``nosniff`` and a CSP that lets nothing run.

An SVG is not an image here: it can carry script. Markdown may show images from this directory
only (``markdown._attribute_filter``).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.core.errors import ApplicationError, PermissionDenied
from discussion.models import Image

# (magic prefix, extension, content type); WebP is RIFF....WEBP.
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
    (b"GIF87a", "gif", "image/gif"),
    (b"GIF89a", "gif", "image/gif"),
)
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
UPLOAD_DIR = "discussion"


def sniff(head: bytes) -> str | None:
    """The extension the bytes really are, or None."""
    for magic, ext, _type in SIGNATURES:
        if head.startswith(magic):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


@transaction.atomic
def image_upload(*, actor: User, upload: UploadedFile) -> Image:
    """Store an image for a post or reply; returns the row (its ``url`` goes into the Markdown)."""
    if not actor.is_authenticated or not actor.is_active:
        raise PermissionDenied(_("Sign in to take part in the forum."))
    limit = settings.ROTA_FORUM_IMAGE_MAX_BYTES
    if upload.size is None or upload.size > limit:
        message = _("The image is larger than %(mb)s MB.") % {"mb": round(limit / 1024 / 1024, 1)}
        raise ApplicationError(message, fields={"image": [message]})
    data = upload.read(limit + 1)
    if len(data) > limit:
        message = _("The image is larger than %(mb)s MB.") % {"mb": round(limit / 1024 / 1024, 1)}
        raise ApplicationError(message, fields={"image": [message]})
    ext = sniff(data[:16])
    if ext is None:
        message = _("Only PNG, JPEG, GIF and WebP images can be uploaded.")
        raise ApplicationError(message, fields={"image": [message]})
    now = timezone.now()
    name = f"{UPLOAD_DIR}/{now:%Y/%m}/{secrets.token_urlsafe(16)}.{ext}"
    stored = default_storage.save(name, ContentFile(data))
    return Image.objects.create(uploader=actor, path=stored, size=len(data), content_type=CONTENT_TYPES[ext])


def image_path(relative: str) -> Path | None:
    """The file of an uploaded image for a URL path below ``discussion/``, or None (no escaping
    the directory, and only files with an image row)."""
    if not Image.objects.filter(path=f"{UPLOAD_DIR}/{relative}").exists():
        return None
    root = Path(settings.MEDIA_ROOT).resolve() / UPLOAD_DIR
    path = (root / relative).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path
