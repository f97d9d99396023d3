"""Content-Security-Policy: every page forbids inline scripts and eval, and no template needs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("apps/*/templates"), *ROOT.glob("*/templates")]
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I | re.S)


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.mark.parametrize("path", ["/login/", "/", "/experiments/", "/submit/", "/django-admin/login/", "/discuss/"])
def test_pages_allow_scripts_from_our_origin_only(page, path):
    response = page.get(path)
    assert response.status_code == (302 if path == "/login/" else 200), path  # signed in: sent on from /login/
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]


def test_the_api_docs_keep_scripts_to_our_origin(page):
    for path in ("/api/docs/", "/api/redoc/"):
        response = page.get(path)
        assert response.status_code == 200
        docs = directives(response)
        assert docs["script-src"] == ["'self'"], path
        assert docs["worker-src"] == ["'self'", "blob:"], path
    assert "worker-src" not in directives(page.get("/login/"))


def test_no_template_has_an_inline_script_or_an_event_handler_attribute():
    templates = [path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html")]
    assert len(templates) > 20, "the template folders moved: update TEMPLATE_DIRS"
    offenders = []
    for path in templates:
        text = path.read_text(encoding="utf-8")
        for attributes in SCRIPT_TAG.findall(text):
            if "src=" not in attributes and 'type="application/json"' not in attributes:
                offenders.append(f"{path.relative_to(ROOT)}: inline <script{attributes}>")
        if EVENT_HANDLER.search(text) or "javascript:" in text:
            offenders.append(f"{path.relative_to(ROOT)}: an on...= handler or javascript: URL")
    assert offenders == []
