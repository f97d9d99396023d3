"""Text for the database search backends: one tokenizer for documents and queries, and snippets.

PostgreSQL's text search splits on spaces and punctuation, which leaves a run of Chinese text as
one "word": "训练卡住了" would only match itself. So documents are indexed as *words* (Latin,
digits: lower-cased) and, for CJK runs, as **overlapping bigrams** plus the run's last character
("训练 练卡 卡住 住了 了"), the classic n-gram approach of CJK search engines. A query is cut the
same way and its bigrams must follow each other (a phrase), so "卡住" finds "训练卡住了" and the
index stays an ordinary GIN index on a ``tsvector``, independent of the server's locale.

Snippets and highlighting are computed here from the original text, the same for every backend
that lacks its own: the window with the most query hits, HTML-escaped, hits wrapped in ``<mark>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# CJK ideographs, kana, hangul: scripts written without spaces.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_CJK_RE = re.compile(rf"[{_CJK}]")
MAX_QUERY_TERMS = 12


def _is_cjk(token: str) -> bool:
    return bool(_CJK_RE.match(token))


def bigrams(run: str) -> list[str]:
    """A CJK run as overlapping bigrams plus its last character (a lone character stays itself)."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)] + [run[-1]]


def index_text(text: str) -> str:
    """The text as the space-separated tokens the index stores."""
    out: list[str] = []
    for token in _TOKEN_RE.findall(text.lower()):
        out.extend(bigrams(token) if _is_cjk(token) else [token])
    return " ".join(out)


_LETTER_RE = re.compile(r"[^\W\d_]")
VOCABULARY_MIN, VOCABULARY_MAX = 3, 64


def vocabulary(tokens: str) -> set[str]:
    """The words of ``index_text`` output worth offering for a misspelt query word: Latin-script
    tokens (no CJK grams) of 3 to 64 characters with at least one letter."""
    return {
        token
        for token in tokens.split()
        if VOCABULARY_MIN <= len(token) <= VOCABULARY_MAX and _LETTER_RE.search(token) and not _is_cjk(token)
    }


@dataclass(frozen=True)
class QueryTerm:
    """One word of a query: a Latin word (matched as a prefix) or a CJK run (its bigrams in order)."""

    text: str
    cjk: bool

    def grams(self) -> list[str]:
        if not self.cjk:
            return [self.text]
        if len(self.text) == 1:
            return [self.text]
        return [self.text[i : i + 2] for i in range(len(self.text) - 1)]


def query_terms(query: str) -> list[QueryTerm]:
    terms: list[QueryTerm] = []
    for token in _TOKEN_RE.findall(query.lower()):
        term = QueryTerm(text=token[:64], cjk=_is_cjk(token))
        if term not in terms:
            terms.append(term)
    return terms[:MAX_QUERY_TERMS]


def tsquery(terms: list[QueryTerm]) -> str:
    """A ``to_tsquery('simple', …)`` string: every term must match; Latin words as prefixes, a lone
    CJK character as a prefix of the bigrams, longer CJK runs as a phrase of bigrams. Tokens are
    letters and digits only (the tokenizer guarantees it), quoted all the same."""
    parts: list[str] = []
    for term in terms:
        grams = term.grams()
        if term.cjk and len(grams) > 1:
            parts.append("(" + " <-> ".join(f"'{g}'" for g in grams) + ")")
        else:
            parts.append(f"'{grams[0]}':*")
    return " & ".join(parts)


def loose_tsquery(terms: list[QueryTerm]) -> str:
    """Like ``tsquery`` but every gram on its own (``'检查' & '查点' & …``), in any order.

    A GIN index answers this one exactly, without reading a row (no phrase to check), so it is the
    cheap way to find the candidates; ``tsquery`` then keeps those whose grams follow each other.
    For queries without a CJK phrase the two are the same string."""
    parts: list[str] = []
    for term in terms:
        grams = term.grams()
        if term.cjk and len(grams) > 1:
            parts.extend(f"'{g}'" for g in dict.fromkeys(grams))
        else:
            parts.append(f"'{grams[0]}':*")
    return " & ".join(parts)


def _hit_pattern(terms: list[QueryTerm]) -> re.Pattern[str] | None:
    if not terms:
        return None
    words = sorted({t.text for t in terms}, key=len, reverse=True)
    alternatives = [re.escape(w) if _is_cjk(w) else r"\b" + re.escape(w) + r"\w*" for w in words]
    return re.compile("|".join(alternatives), re.IGNORECASE)


def highlight(text: str, terms: list[QueryTerm]) -> SafeString:
    """The whole (short) text escaped, with every hit in ``<mark>``."""
    return _marked(text, _hit_pattern(terms))


def _marked(text: str, pattern: re.Pattern[str] | None) -> SafeString:
    if pattern is None:
        return escape(text)
    out: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append("<mark>" + escape(match.group(0)) + "</mark>")
        last = match.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece escaped above


def snippet(text: str, terms: list[QueryTerm], width: int = 180) -> SafeString:
    """The ``width``-character window of ``text`` with the most hits, escaped and highlighted."""
    text = " ".join(text.split())
    pattern = _hit_pattern(terms)
    if pattern is None or len(text) <= width:
        return _marked(text[:width], pattern)
    starts = [m.start() for m in pattern.finditer(text)]
    if not starts:
        return _marked(text[:width] + "…", pattern)
    best, best_hits = starts[0], 0
    for start in starts:
        hits = sum(1 for s in starts if start <= s < start + width)
        if hits > best_hits:
            best, best_hits = start, hits
    begin = max(0, min(best - width // 4, len(text) - width))
    window = text[begin : begin + width]
    prefix = "…" if begin > 0 else ""
    suffix = "…" if begin + width < len(text) else ""
    return mark_safe(prefix + _marked(window, pattern) + suffix)  # noqa: S308 - escaped by _marked
