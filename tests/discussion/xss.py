"""An XSS corpus and a checker that a page rendered it inert.

``assert_inert`` parses the page and fails on anything that could run script: a ``<script>`` that
is not one of the portal's own static files (or JSON data), an ``on*`` attribute, a
``javascript:``/``data:`` URL, an ``<iframe>``/``<object>``/``<embed>``/``<math>``/``<style>``
element, a ``<form>`` posting elsewhere, or a ``style`` attribute. A payload that is visible as
text is fine: that is inert.
"""

from __future__ import annotations

from html.parser import HTMLParser

CORPUS = [
    "<script>alert('x1')</script>",
    '<img src=x onerror="alert(`x2`)">',
    '"><svg onload=alert(3)>',
    "<a href=\"javascript:alert('x4')\">x4</a>",
    "[x5](javascript:alert(5))",
    "[x6](JaVaScRiPt:alert(6))",
    "![x7](javascript:alert(7))",
    "[x8](data:text/html;base64,PHNjcmlwdD5hbGVydCg4KTwvc2NyaXB0Pg==)",
    '<iframe src="https://evil.example/"></iframe>',
    "<style>body{display:none}</style>",
    "'\"><details open ontoggle=alert(9)>",
    "<a href='x' style='position:fixed'>x10</a>",
    "[x11](&#106;avascript:alert(11))",
    "```html\n<script>alert(12)</script>\n```",
    '<math><mi xlink:href="javascript:alert(13)">x</mi></math>',
    "{{ 7|add:7 }}{% csrf_token %}",
]

DANGEROUS_TAGS = {"iframe", "object", "embed", "math", "base", "meta", "link", "frame", "frameset", "style"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if (
            tag == "script"
            and not (values.get("src") or "").startswith("/static/")
            and values.get("type") != "application/json"
        ):
            self.problems.append(f"inline <script> {attrs}")
        own_stylesheet = tag == "link" and (values.get("href") or "").startswith("/static/")
        own_meta = tag == "meta" and ("charset" in values or values.get("name") == "viewport")
        if tag in DANGEROUS_TAGS and not (own_stylesheet or own_meta):
            self.problems.append(f"<{tag}> {attrs}")
        if tag == "form" and (values.get("action") or "").startswith(("javascript", "http")):
            self.problems.append(f"<form> {attrs}")
        for name, value in attrs:
            lowered = (value or "").strip().lower().replace("\t", "").replace("\n", "")
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}={value!r}")
            if name in {"href", "src", "action", "formaction", "xlink:href"} and lowered.startswith(
                ("javascript:", "data:", "vbscript:")
            ):
                self.problems.append(f"{tag} {name}={value!r}")
            if name == "style" and tag != "html":
                self.problems.append(f"{tag} style={value!r}")


def problems(html: str) -> list[str]:
    checker = _Checker()
    checker.feed(html)
    return checker.problems


def assert_inert(html: str) -> None:
    found = problems(html)
    assert found == [], found
