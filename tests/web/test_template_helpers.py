"""The cheap template helpers of list rows say exactly what Django's own tags and filters say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from apps.experiments.choices import ChainStatus, RankStatus, WorkerStatus
from apps.experiments.models import Attempt, Chain, Rank
from apps.web import presentation


def render(text: str, **context) -> str:
    return Template("{% load rota %}" + text).render(Context(context))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_status_labels_are_those_of_the_models_choices(language):
    with translation.override(language):
        for model, field, choices in (
            (Chain, "status", ChainStatus),
            (Attempt, "worker_status", WorkerStatus),
            (Rank, "status", RankStatus),
        ):
            for value in choices.values:
                expected = getattr(model(**{field: value}), f"get_{field}_display")()
                assert presentation.status_label(value) == expected, (model.__name__, value)


def test_status_label_of_an_unknown_value_is_the_value():
    assert presentation.status_label("exploded") == "exploded"
    assert render("{{ s|status_label }}", s="exploded") == "exploded"


def test_status_badge_markup_and_translation():
    html = render("{% status_badge s %}", s=ChainStatus.FAILED)
    assert html == (
        '<span class="badge tone-err" data-status="failed"><span class="dot" aria-hidden="true"></span>Failed</span>'
    )
    with translation.override("zh-hans"):
        zh = render("{% status_badge s %}", s=ChainStatus.FAILED)
        failed = translation.gettext("Failed")
    assert failed != "Failed"
    assert zh == html.replace(">Failed<", f">{failed}<")


def test_status_badge_escapes_a_given_label_and_an_unknown_status():
    html = render("{% status_badge s label %}", s='"><b>', label="<i>x</i>")
    assert "<b>" not in html and "<i>" not in html
    assert 'data-status="&quot;&gt;&lt;b&gt;"' in html and "&lt;i&gt;x&lt;/i&gt;" in html


def test_the_partial_renders_the_same_badge():
    from django.template.loader import render_to_string

    html = render_to_string("web/partials/status_badge.html", {"status": "held", "label": "On hold"})
    assert html.strip() == (
        '<span class="badge tone-held" data-status="held"><span class="dot" aria-hidden="true"></span>On hold</span>'
    )


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/Los_Angeles"])
def test_minute_reads_as_the_date_filter_in_the_pages_time_zone(zone):
    moment = datetime(2026, 3, 8, 9, 59, 59, tzinfo=UTC)
    with timezone.override(zone):
        assert render("{{ t|minute }}", t=moment) == render('{{ t|date:"Y-m-d H:i" }}', t=moment)
    with timezone.override("Asia/Shanghai"):
        assert render("{{ t|minute }}", t=moment) == "2026-03-08 17:59"
    assert render("{{ t|minute }}", t=None) == ""


def test_row_url_is_the_url_tag():
    assert render('{% row_url "web:chain-detail" 12 %}') == render('{% url "web:chain-detail" 12 %}')
    assert render('{% row_url "web:chain-list" as u %}[{{ u }}]') == "[/experiments/]"


def test_templates_are_compiled_once_per_process():
    """Django's cached loader is on (the default when ``loaders`` is not set): a list page's row
    template is parsed once, not for each request."""
    from django.template import engines

    engine = engines["django"].engine
    assert [loader[0] for loader in engine.loaders] == ["django.template.loaders.cached.Loader"]
