"""The admin pages served in Chinese contain no leftover English."""

from __future__ import annotations

import re

from tests.factories import UserFactory
from tests.web.test_i18n import english_left

DATA_WORDS = {"internal", "external", "public", "ops", "root", "vision", "cluster_manager", "quota_editor", ""}


def test_monitor_pages_in_chinese_have_no_english_left(admins, browser_for):
    person = UserFactory(username="zh-person", groups=["vision"])
    zh = browser_for(admins["users"]["root"], language="zh-hans")
    leftovers = {}
    from django.contrib.auth.models import Group

    Group.objects.get_or_create(name="public")
    urls = ["/monitor/users/", "/monitor/users/new/", f"/monitor/users/{person.pk}/", "/monitor/quotas/?group=public"]
    urls += [f"/monitor/quotas/?user={person.username}"]
    for url in urls:
        response = zh.get(url)
        assert response.status_code == 200, url
        # group names are data (e.g. "internal", "ops"), shown as they are in every language
        found = [m for m in english_left(response.content.decode()) if set(re.split(r"[ ,]+", m)) - DATA_WORDS]
        if found:
            leftovers[url] = found
    assert leftovers == {}
