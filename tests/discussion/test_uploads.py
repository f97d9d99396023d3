"""Image uploads: type checked by content, size-limited, served back with safe headers only to
signed-in users, shown in Markdown only from the upload directory."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from discussion.models import Image
from tests.permissions import db_state

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_URL = "/media/"


def upload(client, name: str, data: bytes, content_type: str = "image/png"):
    return client.post("/discuss/upload/", {"image": SimpleUploadedFile(name, data, content_type=content_type)})


def test_png_is_stored_and_served_as_png_with_safe_headers(author, reader, browser_for, settings):
    response = upload(browser_for(author), "cat.png", PNG)
    assert response.status_code == 201
    url = response.json()["url"]
    assert url.startswith("/media/discussion/") and url.endswith(".png")
    assert response.json()["markdown"] == f"![]({url})"
    image = Image.objects.get()
    assert (image.uploader, image.size, image.content_type) == (author, len(PNG), "image/png")
    served = browser_for(reader).get(url)
    assert served.status_code == 200 and b"".join(served.streaming_content) == PNG
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert browser_for(None).get(url).status_code == 302


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("x.png", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "image/png"),
        ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        ("x.html", b"<html><script>alert(1)</script></html>", "text/html"),
        ("x.png", b"", "image/png"),
    ],
)
def test_anything_but_a_real_image_is_refused_and_nothing_is_stored(
    author, browser_for, settings, name, data, content_type
):
    before = db_state()
    response = upload(browser_for(author), name, data, content_type)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"image": ["Only PNG, JPEG, GIF and WebP images can be uploaded."]}
    assert db_state() == before
    assert not (settings.MEDIA_ROOT / "discussion").exists()


def test_too_large_is_refused(author, browser_for, settings):
    settings.ROTA_FORUM_IMAGE_MAX_BYTES = 32
    response = upload(browser_for(author), "big.png", PNG)
    assert response.status_code == 400 and "larger than" in response.json()["error"]["message"]
    assert Image.objects.count() == 0


def test_no_file_and_anonymous(author, browser_for):
    assert browser_for(author).post("/discuss/upload/", {}).status_code == 400
    assert browser_for(None).post("/discuss/upload/", {"image": SimpleUploadedFile("a.png", PNG)}).status_code == 302
    assert Image.objects.count() == 0


def test_only_uploaded_files_are_served(author, browser_for, settings):
    (settings.MEDIA_ROOT / "discussion").mkdir(parents=True)
    (settings.MEDIA_ROOT / "discussion" / "planted.png").write_bytes(PNG)
    client = browser_for(author)
    assert client.get("/media/discussion/planted.png").status_code == 404
    assert client.get("/media/discussion/../../etc/passwd").status_code == 404


def test_uploaded_image_shows_in_a_post(author, browser_for, make_post):
    url = upload(browser_for(author), "cat.png", PNG).json()["url"]
    post = make_post(body=f"look ![a cat]({url}) and ![x](https://evil.example/p.png)")
    assert f'<img src="{url}" alt="a cat">' in post.body_html
    assert "evil.example" not in post.body_html


def test_preview_renders_sanitised_markdown(author, browser_for):
    response = browser_for(author).post("/discuss/preview/", {"body": "**hi** #12 <script>x</script>"})
    assert response.content.decode() == (
        '<p><strong>hi</strong> <a href="/experiments/12/" class="job-ref" rel="nofollow noopener noreferrer">#12</a>'
        " &lt;script&gt;x&lt;/script&gt;</p>\n"
    )
