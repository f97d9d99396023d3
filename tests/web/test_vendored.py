"""Vendored front-end packages (static/vendor/README.md): each file is exactly what the README's
checksum says was copied from the npm registry, and each package directory carries its licence."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "static" / "vendor"


def recorded_checksums() -> dict[str, str]:
    text = (VENDOR / "README.md").read_text()
    return {path: digest for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.MULTILINE)}


def test_every_vendored_file_matches_its_recorded_checksum():
    recorded = recorded_checksums()
    assert {"easymde/easymde.min.js", "easymde/easymde.min.css", "htmx/htmx.min.js"} <= set(recorded)
    for path, digest in recorded.items():
        assert hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() == digest, path


def test_every_vendored_package_has_its_licence_and_a_row_in_the_readme():
    readme = (VENDOR / "README.md").read_text()
    for package in sorted(p for p in VENDOR.iterdir() if p.is_dir()):
        assert (package / "LICENSE").is_file(), package.name
        assert f"| `{package.name}/` |" in readme, package.name


def test_the_editor_reaches_nothing_outside_the_site():
    """EasyMDE's bundle knows CDN addresses (Font Awesome, dictionaries); our setup turns those
    features off, and the vendored stylesheet imports nothing."""
    setup = (VENDOR.parent / "js" / "forum-editor.js").read_text()
    assert "autoDownloadFontAwesome: false" in setup
    assert "spellChecker: false" in setup
    assert "previewRender: previewRender" in setup
    css = (VENDOR / "easymde" / "easymde.min.css").read_text()
    assert "@import" not in css and "url(" not in css
