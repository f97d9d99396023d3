"""Markdown to safe HTML for posts and replies.

Two layers, so that one mistake is not enough for stored XSS (HAI's forum had it, see
``shared/reference/hai-studio.md`` weakness 3):

1. markdown-it (CommonMark, tables, strikethrough) with raw HTML **off**: ``<script>`` in a post is
   text. Its link validator already refuses ``javascript:``/``vbscript:``/``file:``/``data:`` URLs.
   Fenced code is highlighted by Pygments (CSS classes only, no inline styles). Two inline rules of
   our own turn ``#123`` into a link to job 123 and ``@name`` into a link to that user's posts
   when such a user exists; a core rule turns the exact name of a node (``gpu-a01``) in plain text
   into a link to the node's forum page (not inside code, not inside another link).
2. nh3 (ammonia) cleans the result against an allow-list of tags, attributes, classes and URL
   schemes, and adds ``rel="nofollow noopener noreferrer"`` to links. Images are only allowed from
   the forum's own upload directory.

``render`` returns the HTML, the user names it mentioned (for notifications) and the nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import nh3
from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils.http import urlencode
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from apps.accounts.models import User
from apps.cluster.models import Node

JOB_REF_RE = re.compile(r"#([0-9]{1,12})(?![0-9A-Za-z_])")
# Django user names: letters, digits and @ . + - _; a mention never ends with a dot (end of sentence).
MENTION_RE = re.compile(r"@([A-Za-z0-9_+\-.]{1,150})")
_LANG_RE = re.compile(r"[A-Za-z0-9_+#-]{1,32}")
_CLASS_RE = re.compile(r"[A-Za-z0-9_ -]{1,200}")
MAX_MENTIONS = 50  # per text: more are left as plain text
# A node name (apps.cluster.models.name_validator) standing as a word of its own.
NODE_RE = re.compile(r"(?<![\w.\-@#/])[a-z0-9](?:[a-z0-9_.\-]{0,62}[a-z0-9])?(?![\w\-]|\.\w)")
MAX_NODE_CANDIDATES = 2000  # distinct words looked up per text
_WORD = re.compile(r"[0-9A-Za-z_]")

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "img", "li",
    "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "ol": {"start"},
}


@dataclass
class Rendered:
    html: str
    mentions: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)


def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments with CSS classes (the stylesheet is ``static/css/discussion.css``)."""
    lexer = None
    if lang and _LANG_RE.fullmatch(lang):
        try:
            lexer = get_lexer_by_name(lang.lower())
        except ClassNotFound:
            lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    body = highlight(code, lexer, HtmlFormatter(nowrap=True))
    return f'<pre class="highlight"><code class="language-{lang.lower()}">{body}</code></pre>'


def _preceded_by_word(state: StateInline) -> bool:
    return state.pos > 0 and bool(_WORD.match(state.src[state.pos - 1]))


def _push_link(state: StateInline, href: str, text: str, css: str) -> None:
    token = state.push("link_open", "a", 1)
    token.attrs = {"href": href, "class": css}
    token.markup = "rota"
    token = state.push("text", "", 0)
    token.content = text
    state.push("link_close", "a", -1)


def _job_ref_rule(state: StateInline, silent: bool) -> bool:
    """``#123`` → a link to job 123 (not inside a word, not inside a link)."""
    if state.src[state.pos] != "#" or _preceded_by_word(state) or state.linkLevel > 0:
        return False
    match = JOB_REF_RE.match(state.src, state.pos)
    if match is None:
        return False
    if not silent:
        _push_link(state, reverse("web:chain-detail", args=[int(match.group(1))]), match.group(0), "job-ref")
    state.pos = match.end()
    return True


def _mention_rule(state: StateInline, silent: bool) -> bool:
    """``@name`` → a link to that user's posts when the user exists (else plain text)."""
    if state.src[state.pos] != "@" or _preceded_by_word(state) or state.linkLevel > 0:
        return False
    match = MENTION_RE.match(state.src, state.pos)
    if match is None:
        return False
    name = match.group(1).rstrip(".")
    known: dict[str, str] = state.env.get("users", {})
    username = known.get(name.lower())
    if username is None:
        return False
    if not silent:
        href = reverse("discussion:post-list") + "?" + urlencode({"author": username})
        _push_link(state, href, "@" + name, "mention")
        state.env.setdefault("mentioned", set()).add(username)
    state.pos += 1 + len(name)
    return True


def _node_links(state: StateCore) -> None:
    """Node names in plain text → links to the node's forum page. Runs after the inline rules, on
    their text tokens only: code spans and blocks are other tokens, and text inside a link (ours
    or the author's) is left alone."""
    known: set[str] = state.env.get("nodes", set())
    if not known:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        depth = 0
        for token in block.children:
            if token.type == "link_open":
                depth += 1
            elif token.type == "link_close":
                depth -= 1
            if token.type != "text" or depth > 0:
                children.append(token)
                continue
            last = 0
            for match in NODE_RE.finditer(token.content):
                if match.group(0) not in known:
                    continue
                if match.start() > last:
                    children.append(_text(token.content[last : match.start()]))
                href = reverse("discussion:node", args=[match.group(0)])
                children.append(Token("link_open", "a", 1, attrs={"href": href, "class": "node-ref"}, markup="rota"))
                children.append(_text(match.group(0)))
                children.append(Token("link_close", "a", -1, markup="rota"))
                state.env.setdefault("mentioned_nodes", set()).add(match.group(0))
                last = match.end()
            children.append(token if last == 0 else _text(token.content[last:]))
        block.children = children


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.inline.ruler.before("link", "rota_job_ref", _job_ref_rule)
    md.inline.ruler.before("link", "rota_mention", _mention_rule)
    md.core.ruler.after("inline", "rota_node_links", _node_links)
    return md


_md = _parser()


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    if attribute == "class" and not _CLASS_RE.fullmatch(value):
        return None
    if element == "img" and attribute == "src":
        # Only the forum's own uploads: no tracking pixels, nothing the CSP would block anyway.
        prefix = settings.MEDIA_URL.rstrip("/") + "/discussion/"
        if not value.startswith(prefix) or ".." in value:
            return None
    return value


def sanitize(html: str) -> str:
    """The allow-list pass over HTML from the renderer (or anywhere else)."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


def _known_users(text: str) -> dict[str, str]:
    """Lower-cased mention → user name, for the users the text mentions (one query)."""
    names = {m.group(1).rstrip(".").lower() for m in MENTION_RE.finditer(text)}
    names.discard("")
    if not names:
        return {}
    match_any = Q()
    for name in sorted(names)[:MAX_MENTIONS]:
        match_any |= Q(username__iexact=name)
    users = User.objects.filter(match_any, is_active=True).values_list("username", flat=True)
    return {username.lower(): username for username in users}


def _known_nodes(text: str) -> set[str]:
    """The node names among the text's words (one query)."""
    words = sorted({m.group(0) for m in NODE_RE.finditer(text)})[:MAX_NODE_CANDIDATES]
    if not words:
        return set()
    return set(Node.objects.filter(name__in=words).values_list("name", flat=True))


def render(text: str) -> Rendered:
    """Render a post or reply body; the HTML is safe to mark safe."""
    env: dict[str, Any] = {"users": _known_users(text), "nodes": _known_nodes(text)}
    html = _md.render(text, env)
    return Rendered(
        html=sanitize(html),
        mentions=set(env.get("mentioned", set())),
        nodes=set(env.get("mentioned_nodes", set())),
    )
