"""Both catalogues are complete, and pages served in Chinese contain no leftover English."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings

from apps.cluster import services as cluster_services
from apps.experiments import services as experiment_services
from apps.quotas import services as quota_services
from apps.web.models import Notice

LOCALE = Path(settings.BASE_DIR) / "locale"


def po_entries(path: Path) -> list[tuple[str, str, bool]]:
    """(msgid, first msgstr, fuzzy) of every entry of a .po file, header excluded. A message with a
    context is keyed as gettext keys it: ``context + "\\x04" + msgid``."""
    import ast

    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, list[str]] = {}
        current = None
        fuzzy = False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            match = re.match(r"^(msgctxt|msgid|msgid_plural|msgstr(?:\[0\])?) (\".*\")$", line)
            if match:
                current = match.group(1).replace("[0]", "")
                fields[current] = [match.group(2)]
            elif line.startswith('"') and current:
                fields[current].append(line)
        if "msgid" not in fields:
            continue
        msgid = "".join(ast.literal_eval(part) for part in fields["msgid"])
        msgstr = "".join(ast.literal_eval(part) for part in fields.get("msgstr", ['""']))
        if "msgctxt" in fields:
            msgid = "".join(ast.literal_eval(part) for part in fields["msgctxt"]) + "\x04" + msgid
        if msgid:
            entries.append((msgid, msgstr, fuzzy))
    return entries


def test_chinese_catalogue_is_complete_and_compiled():
    po = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
    entries = po_entries(po)
    assert len(entries) > 600
    assert [msgid for msgid, msgstr, fuzzy in entries if not msgstr or fuzzy] == []
    with open(po.with_suffix(".mo"), "rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = [msgid for msgid, msgstr, _fuzzy in entries if compiled.gettext(msgid) != msgstr]
    assert stale == [], "run: python manage.py compilemessages"


def test_english_catalogue_lists_the_same_messages():
    zh = {msgid for msgid, _s, _f in po_entries(LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po")}
    en = {msgid for msgid, _s, _f in po_entries(LOCALE / "en" / "LC_MESSAGES" / "django.po")}
    assert zh == en


# The scheduler's explanations are English by design (marked lang="en", under a translated headline).
# Data (paths, commands) is shown in monospace and is not translated.
TAGS = re.compile(
    r'<(script|style|pre|code|kbd|datalist)\b.*?</\1>|<span [^>]*lang="en">.*?</span>'
    r'|<(dd|td|span|div) class="[^"]*\bmono\b[^"]*">.*?</\2>|<[^>]+>',
    re.S,
)
ATTRS = re.compile(r'\b(?:title|placeholder|aria-label|data-confirm|data-label-[a-z]+)="([^"]*)"')
ENGLISH = re.compile(r"\b[A-Za-z][a-z]{2,}(?:[ ,’'-]+[a-z]{2,}){1,}\b")
ALLOWED = {"vision baseline"}  # an example of tags, in a placeholder


def english_left(html: str) -> list[str]:
    texts = [TAGS.sub(" ", html), *ATTRS.findall(html)]
    found = []
    for text in texts:
        for match in ENGLISH.findall(text.replace("&#x27;", "'")):
            if match not in ALLOWED:
                found.append(match)
    return found


@pytest.fixture
def zh_pages(cluster, submit, user, browser_for, workspace):
    (workspace / "x.py").write_text("print(1)\n")
    cluster.set_quota(user, 10, 1)
    # A second node group the user may use: the waiting job's page offers to move it there.
    spare = cluster_services.node_group_upsert(actor=None, name="gpu2")
    cluster_services.node_upsert(actor=None, name="s0", group=spare, gpu_count=8, room="a")
    quota_services.quota_set(actor=None, user=user, kind="node", node_group=spare, priority=10, value=1)
    running = submit(user, name="j1", entrypoint="x.py", priority=10, tags=["t1"])
    waiting = submit(user, name="j2", entrypoint="x.py", priority=10)
    held = submit(user, name="j3", entrypoint="x.py", priority=10)
    experiment_services.experiment_suspend(actor=user, chain=held)
    Notice.objects.create(title="维护", body="周六维护")
    return browser_for(user, language="zh-hans"), running, waiting


def test_pages_in_chinese_have_no_english_left(zh_pages):
    zh, running, waiting = zh_pages
    urls = [
        "/",
        "/experiments/",
        "/experiments/?status=finished",
        f"/experiments/{running.pk}/",
        f"/experiments/{running.pk}/logs/",
        f"/experiments/{waiting.pk}/",
        "/submit/",
        f"/submit/?from={running.pk}",
        "/account/",
        "/account/tokens/",
        "/account/settings/",
        "/experiments/999999/",
    ]
    leftovers = {}
    for url in urls:
        response = zh.get(url)
        assert response.status_code == (404 if url == "/experiments/999999/" else 200), url
        body = response.content.decode()
        if url == f"/experiments/{running.pk}/":
            assert "停止并记为成功" in body and "停止并记为失败" in body
        if url == f"/experiments/{waiting.pk}/":
            assert "移到节点组…" in body
        found = english_left(body)
        if found:
            leftovers[url] = found
    assert leftovers == {}
