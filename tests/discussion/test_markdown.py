"""Markdown rendering: what it turns into links and highlighted code, and what it never lets through."""

from __future__ import annotations

import pytest

from discussion import markdown
from tests.discussion.xss import CORPUS, assert_inert
from tests.factories import NodeFactory, UserFactory


def test_job_reference_becomes_a_link_to_the_job_but_not_inside_words_or_code(db):
    html = markdown.render("see #123, a#5, `#7` and [#8](https://example.org/)").html
    assert '<a href="/experiments/123/" class="job-ref" rel="nofollow noopener noreferrer">#123</a>' in html
    assert "a#5" in html
    assert "<code>#7</code>" in html
    assert "/experiments/8/" not in html


def test_mention_of_a_known_user_links_to_their_posts_and_is_reported(db):
    UserFactory(username="Carol")
    rendered = markdown.render("thanks @carol. and @nobody")
    assert (
        '<a href="/discuss/?author=Carol" class="mention" rel="nofollow noopener noreferrer">@carol</a>.'
        in rendered.html
    )
    assert "@nobody" in rendered.html and "author=nobody" not in rendered.html
    assert rendered.mentions == {"Carol"}


def test_mention_in_an_email_address_is_not_a_mention(db):
    UserFactory(username="example")
    rendered = markdown.render("mail me at me@example.org")
    assert rendered.mentions == set()


def test_node_names_link_to_the_node_page_but_not_in_code_links_or_other_words(db):
    NodeFactory(name="gpu-a01")
    NodeFactory(name="node1.dc2")
    rendered = markdown.render(
        "gpu-a01 hangs, so does node1.dc2. Not `gpu-a01`, [gpu-a01](https://example.org/),"
        " gpu-a01x, x-gpu-a01, GPU-A01 or gpu-a99.\n\n```\ngpu-a01\n```"
    )
    link = '<a href="/discuss/nodes/{0}/" class="node-ref" rel="nofollow noopener noreferrer">{0}</a>'
    first = f"<p>{link.format('gpu-a01')} hangs, so does {link.format('node1.dc2')}."
    assert rendered.html.startswith(first)
    assert rendered.html.count('class="node-ref"') == 2
    assert "<code>gpu-a01</code>" in rendered.html
    assert '<a href="https://example.org/" rel="nofollow noopener noreferrer">gpu-a01</a>' in rendered.html
    assert "gpu-a01x, x-gpu-a01, GPU-A01 or gpu-a99." in rendered.html
    assert rendered.nodes == {"gpu-a01", "node1.dc2"}


def test_text_without_node_names_costs_no_node_lookup(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert markdown.render("@ # ... --").nodes == set()


def test_fenced_code_is_highlighted_with_classes_only(db):
    html = markdown.render("```python\nprint('<b>')\n```").html
    assert html.startswith('<pre class="highlight"><code class="language-python"><span class="nb">print</span>')
    assert "&lt;b&gt;" in html
    assert "style=" not in html


def test_unknown_language_is_escaped_plain_code(db):
    html = markdown.render('```no-such-lang"><script>\n<i>x</i>\n```').html
    assert "<script>" not in html and "&lt;i&gt;x&lt;/i&gt;" in html


def test_raw_html_is_text_and_tables_work(db):
    html = markdown.render("<b>bold?</b>\n\n| a | b |\n|---|--:|\n| 1 | 2 |").html
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert "<table>" in html and "<td>2</td>" in html and "style" not in html


def test_images_only_from_the_forum_uploads(db, settings):
    settings.MEDIA_URL = "/media/"
    html = markdown.render("![a](https://evil.example/pixel.png) ![b](/media/discussion/2026/x.png)").html
    assert "evil.example" not in html
    assert '<img src="/media/discussion/2026/x.png" alt="b">' in html


@pytest.mark.parametrize("payload", CORPUS)
def test_corpus_renders_inert(db, payload):
    assert_inert(markdown.render(payload).html)


def test_sanitize_strips_what_the_renderer_would_never_make():
    dirty = (
        '<p onclick="x()">a</p><a href="javascript:alert(1)">b</a><img src="/x.png" onerror="y()"><script>z()</script>'
    )
    assert markdown.sanitize(dirty) == '<p>a</p><a rel="nofollow noopener noreferrer">b</a><img>'
