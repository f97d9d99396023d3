"""Forum search on the database backends (PostgreSQL full text, or the SQLite fallback): matching,
CJK, ranking, highlighting, visibility, filters. Each test runs on whichever database the suite
uses; PostgreSQL-only behaviour (typo tolerance) says so."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from discussion import search, services
from discussion.models import Post, SearchWord
from discussion.search import text


def find(user, q: str, **kwargs) -> search.SearchPage:
    return search.get_backend().search(search.SearchRequest(text=q, user=user, **kwargs))


def titles(page: search.SearchPage) -> list[str]:
    return [Post.objects.get(pk=h.post_id).title for h in page.hits]


def test_tokens_cut_cjk_into_bigrams_and_keep_words():
    assert text.index_text("NCCL Timeout: 训练卡住了!") == "nccl timeout 训练 练卡 卡住 住了 了"
    terms = text.query_terms("卡住了 nccl 卡")
    assert text.tsquery(terms) == "('卡住' <-> '住了') & 'nccl':* & '卡':*"
    # What the GIN index answers without reading rows: the grams in any order.
    assert text.loose_tsquery(terms) == "'卡住' & '住了' & 'nccl':* & '卡':*"
    assert text.loose_tsquery(text.query_terms("nccl timeout")) == text.tsquery(text.query_terms("nccl timeout"))


def test_vocabulary_keeps_words_of_three_letters_or_more_and_no_cjk_grams():
    tokens = text.index_text("NCCL timeout on x86, error 137: 训练卡住了 ab")
    assert text.vocabulary(tokens) == {"nccl", "timeout", "x86", "error"}


def test_snippet_is_escaped_and_marks_hits():
    terms = text.query_terms("nccl 卡住")
    html = text.snippet("<b>x</b> " * 40 + "NCCL hangs, 训练卡住了 " + "y " * 200, terms, width=60)
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "<mark>NCCL</mark>" in html and "训练<mark>卡住</mark>了" in html
    assert html.startswith("…") and html.endswith("…")


@pytest.fixture
def corpus(make_post, make_reply, author, moderator):
    a = make_post(title="NCCL timeout on four nodes", body="all ranks hang at init", tags="nccl")
    b = make_post(title="Disk quota", body="my checkpoint hit an NCCL error once", tags="storage", category="nodes")
    c = make_post(title="训练卡住了", body="多机训练在初始化时卡住", tags="训练")
    d = make_post(title="Docker image", body="which base image?", tags="images", category="environments")
    make_reply(d, body="use the pytorch one with CUDA 12")
    hidden = make_post(title="secret NCCL trick", body="hidden", tags="nccl")
    services.post_moderate(actor=moderator, post=hidden, action="hide")
    gone = make_post(title="deleted NCCL note", body="gone", tags="nccl")
    services.post_delete(actor=author, post=gone)
    return {"a": a, "b": b, "c": c, "d": d, "hidden": hidden}


def test_finds_titles_bodies_and_replies_and_ranks_title_hits_first(corpus, reader):
    page = find(reader, "nccl")
    assert titles(page) == ["NCCL timeout on four nodes", "Disk quota"]
    assert page.total == 2
    assert titles(find(reader, "pytorch cuda")) == ["Docker image"]
    assert titles(find(reader, "nccl hang")) == ["NCCL timeout on four nodes"]


def test_chinese_words_match_inside_longer_runs(corpus, reader):
    assert titles(find(reader, "卡住")) == ["训练卡住了"]
    assert titles(find(reader, "初始化")) == ["训练卡住了"]
    assert titles(find(reader, "初始卡住")) == []
    hit = find(reader, "卡住").hits[0]
    assert hit.title == "训练<mark>卡住</mark>了"
    assert "<mark>卡住</mark>" in hit.snippet


def test_a_chinese_phrase_matches_only_where_its_characters_follow_each_other(corpus, make_post, reader):
    # Every bigram of 卡住了 is here, but not in a row: the candidates hold it, the phrase drops it.
    make_post(title="Scattered", body="先卡住 再说 住了 以后", tags="x")
    assert titles(find(reader, "卡住了")) == ["训练卡住了"]
    assert find(reader, "卡住了").total == 1


def test_hits_are_highlighted_and_escaped(make_post, reader):
    make_post(title="<script>alert(1)</script> nccl", body="see <img src=x onerror=alert(2)> nccl", tags="x")
    hit = find(reader, "nccl").hits[0]
    assert hit.title == "&lt;script&gt;alert(1)&lt;/script&gt; <mark>nccl</mark>"
    assert "<img" not in hit.snippet and "&lt;img src=x onerror=alert(2)&gt; <mark>nccl</mark>" in hit.snippet


def test_hidden_posts_only_for_their_author_and_moderators_deleted_for_nobody(corpus, reader, author, moderator):
    assert "secret NCCL trick" not in titles(find(reader, "nccl"))
    assert "secret NCCL trick" in titles(find(author, "nccl"))
    assert "secret NCCL trick" in titles(find(moderator, "nccl"))
    for user in (reader, author, moderator):
        assert "deleted NCCL note" not in titles(find(user, "nccl"))


def test_filters_and_sorts(corpus, reader):
    assert titles(find(reader, "nccl", category="nodes")) == ["Disk quota"]
    assert titles(find(reader, "nccl", tag="NCCL")) == ["NCCL timeout on four nodes"]
    assert titles(find(reader, "nccl", sort=search.SearchSort.NEWEST)) == ["Disk quota", "NCCL timeout on four nodes"]
    assert find(reader, "   ").total == 0


def test_edits_and_replies_reach_the_index_at_once(corpus, make_reply, author, reader):
    assert titles(find(reader, "infiniband")) == []
    reply = make_reply(corpus["a"], body="check the InfiniBand cables")
    assert titles(find(reader, "infiniband")) == ["NCCL timeout on four nodes"]
    services.reply_delete(actor=reply.author, reply=reply)
    assert titles(find(reader, "infiniband")) == []


def test_reindex_command_rebuilds_the_columns(corpus, reader):
    Post.objects.update(search_title="", search_document="")
    assert find(reader, "checkpoint").total == 0
    out = io.StringIO()
    call_command("forum_reindex", stdout=out)
    assert out.getvalue() == "database: 6 posts\n"
    assert titles(find(reader, "checkpoint")) == ["Disk quota"]


def test_words_of_posts_and_replies_join_the_vocabulary(corpus, make_reply, reader):
    vocabulary = set(SearchWord.objects.values_list("word", flat=True))
    assert {"nccl", "timeout", "ranks", "checkpoint", "pytorch"} <= vocabulary
    assert not SearchWord.objects.filter(word="infiniband").exists()
    make_reply(corpus["a"], body="check the InfiniBand cables")
    assert SearchWord.objects.filter(word="infiniband").count() == 1
    make_reply(corpus["b"], body="InfiniBand again")  # known words are not added twice
    assert SearchWord.objects.filter(word="infiniband").count() == 1


def test_reindex_command_fills_the_vocabulary(corpus):
    SearchWord.objects.all().delete()
    call_command("forum_reindex", stdout=io.StringIO())
    assert SearchWord.objects.filter(word__in=["nccl", "checkpoint", "pytorch"]).count() == 3


def test_a_misspelt_word_is_searched_as_the_closest_known_word_on_postgres(corpus, make_reply, reader, browser_for):
    if connection.vendor != "postgresql":
        pytest.skip("trigram similarity is PostgreSQL's (pg_trgm)")
    page = find(reader, "timout")
    assert titles(page) == ["NCCL timeout on four nodes"]
    assert page.corrected == "timeout"
    assert page.hits[0].title == "NCCL <mark>timeout</mark> on four nodes"
    # Words of bodies and replies too, not only titles; each word of the query is corrected.
    make_reply(corpus["d"], body="the infiniband card was loose")
    page = find(reader, "infinband cudda")
    assert (titles(page), page.corrected) == (["Docker image"], "infiniband cuda")
    body = browser_for(reader).get("/discuss/search/?q=timout").content.decode()
    assert "Nothing matched the words as typed; these are the posts with “timeout”." in body


def test_nothing_close_means_no_correction_and_no_results_on_postgres(corpus, reader):
    if connection.vendor != "postgresql":
        pytest.skip("trigram similarity is PostgreSQL's (pg_trgm)")
    page = find(reader, "timout zzzzqqq")
    assert (page.total, page.hits, page.corrected) == (0, [], "")
    # Correct words are not "corrected" into others: nothing matches them together.
    page = find(reader, "docker quota")
    assert (page.total, page.corrected) == (0, "")


def test_a_correction_still_sees_only_what_the_reader_may(corpus, reader, author):
    if connection.vendor != "postgresql":
        pytest.skip("trigram similarity is PostgreSQL's (pg_trgm)")
    assert titles(find(reader, "secrett")) == []
    assert titles(find(author, "secrett")) == ["secret NCCL trick"]


@pytest.fixture
def pg_only():
    if connection.vendor != "postgresql":
        pytest.skip("the candidate strategies are the PostgreSQL backend's")


@pytest.mark.parametrize("strategy", ["walk", "bitmap", "bitmap, window too small"])
def test_every_way_of_finding_candidates_gives_the_same_page(pg_only, corpus, make_post, reader, monkeypatch, strategy):
    from discussion.search import postgres

    for i in range(6):
        make_post(title=f"NCCL note {i}", body="训练卡住了 again", tags="nccl")
    expected = {
        q: (titles(find(reader, q)), find(reader, q).total) for q in ("nccl", "卡住了", "nccl hang", "pytorch cuda")
    }
    monkeypatch.setattr(postgres, "walk_newest", lambda **kw: strategy == "walk")
    if strategy == "bitmap, window too small":
        # One id: never CAP + 1 candidates in it, so the search runs again over every id.
        monkeypatch.setattr(postgres, "newest_window", lambda **kw: 1)
    monkeypatch.setattr(postgres, "CAP", 3)
    for q, (all_titles, total) in expected.items():
        page = find(reader, q)
        assert (page.total, page.capped) == (min(total, 3), total > 3), q
        # The newest CAP matches are ranked: the page holds the expected ones of those.
        newest = sorted(all_titles, key=lambda t: -Post.objects.get(title=t).pk)[:3]
        assert sorted(titles(page)) == sorted(newest), q


def test_strategy_and_window_follow_the_estimate(monkeypatch):
    from discussion.search import postgres

    monkeypatch.setattr(postgres, "CAP", 1000)
    # 100,000 posts: walking from the newest reads CAP * posts / matches rows, the bitmap matches.
    assert postgres.walk_newest(estimated_matches=90_000, posts=100_000) is True
    assert postgres.walk_newest(estimated_matches=10_000, posts=100_000) is True
    assert postgres.walk_newest(estimated_matches=9_999, posts=100_000) is False
    assert postgres.newest_window(estimated_matches=2_000, posts=100_000) == 50_051
    assert postgres.newest_window(estimated_matches=500, posts=100_000) is None  # all ids
    assert postgres.newest_window(estimated_matches=0, posts=0) is None


def test_search_vectors_stay_in_the_row_on_postgres(pg_only, db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'discussion_post'::regclass"
            " AND attname = 'search_vector'"
        )
        assert cursor.fetchone() == ("m",)


def test_search_page_shows_highlighted_results(corpus, browser_for, reader):
    body = browser_for(reader).get("/discuss/search/?q=nccl&sort=newest").content.decode()
    assert "2 posts found" in body
    assert body.index("Disk quota") < body.index("<mark>NCCL</mark> timeout on four nodes")
    empty = browser_for(reader).get("/discuss/search/?q=zzzz").content.decode()
    assert "Nothing matches all of these words" in empty


def test_postgres_counts_and_ranks_at_most_cap_matches_and_says_so(corpus, make_post, reader, browser_for, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the cap is the PostgreSQL backend's")
    from discussion.search import postgres

    monkeypatch.setattr(postgres, "CAP", 1)
    page = find(reader, "nccl")
    assert (page.total, page.capped, len(page.hits)) == (1, True, 1)
    body = browser_for(reader).get("/discuss/search/?q=nccl").content.decode()
    assert "More than 1 posts found" in body
