"""``reverse_pk``: the same URLs as ``reverse()``, whatever the script prefix or URLconf."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import override_settings
from django.urls import NoReverseMatch, clear_script_prefix, path, reverse, set_script_prefix

from apps.core.reversing import reverse_pk


def _view(request, pk=0):  # pragma: no cover - never called, only reversed
    return HttpResponse()


# A URLconf of this module: a keyed route whose fixed text contains the sentinel key itself.
urlpatterns = [
    path("odd/8675309001234/<int:pk>/", _view, name="odd"),
    path("plain/<int:pk>/", _view, name="plain"),
]


@pytest.mark.parametrize("name", ["web:chain-detail", "web:chain-row", "web:chain-untag", "monitor:user-detail"])
@pytest.mark.parametrize("pk", [1, 42, 1234567])
def test_matches_reverse_for_keyed_views(name, pk):
    assert reverse_pk(name, pk) == reverse(name, args=[pk])


def test_view_without_arguments():
    assert reverse_pk("web:chain-list") == reverse("web:chain-list") == "/experiments/"


def test_follows_the_script_prefix_of_the_request():
    assert reverse_pk("web:chain-detail", 7) == "/experiments/7/"
    set_script_prefix("/rota/")
    try:
        assert reverse_pk("web:chain-detail", 7) == "/rota/experiments/7/"
        assert reverse_pk("web:chain-list") == "/rota/experiments/"
    finally:
        clear_script_prefix()
    assert reverse_pk("web:chain-detail", 7) == "/experiments/7/"


@override_settings(ROOT_URLCONF=__name__)
def test_another_urlconf_and_a_route_containing_the_sentinel():
    assert reverse_pk("plain", 3) == "/plain/3/"
    # The sentinel appears twice in this route's URL: it falls back to ``reverse()``, still right.
    assert reverse_pk("odd", 3) == "/odd/8675309001234/3/"


def test_unknown_view_raises_like_reverse():
    with pytest.raises(NoReverseMatch):
        reverse_pk("web:no-such-view", 1)
    with pytest.raises(NoReverseMatch):
        reverse_pk("web:chain-list", 1)  # takes no key
