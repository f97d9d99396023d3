"""The portal's uPlot charts in a real browser: the job's metrics (static/js/charts.js) and the
scheduler's history (static/js/monitor-history.js), both sized by static/js/portal/chart-set.js.
Every chart is as wide as its card, follows the window as it narrows (two columns, then one) and
widens again at the same height, and is drawn anew when the theme changes or the reader picks
another horizontal axis."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.experiments.models import Attempt, Chain, MetricPoint
from tests.browser.conftest import sign_in
from tests.conftest import wait_until
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Once the page shows `count` charts, each drawn (its canvas) as wide as its box within the
# resize slack, and all narrower than `below` and wider than `above`: their [width, height] pairs.
CHARTS_FIT = """({ count, below, above }) => {
    const boxes = [...document.querySelectorAll(".chart")];
    if (boxes.length !== count) return null;
    const sizes = boxes.map((box) => {
        const canvas = box.querySelector(".uplot canvas");
        const r = canvas ? canvas.getBoundingClientRect() : { width: 0, height: 0 };
        return [box.clientWidth, r.width, r.height];
    });
    const fit = sizes.every(([box, w]) => w > 0 && Math.abs(box - w) <= 4 && w < below && w > above);
    return fit ? sizes.map(([, w, h]) => [w, h]) : null;
}"""

# The charts drawn now, marked, so that a redraw shows as none of them left.
MARK_CHARTS = "() => document.querySelectorAll('.chart canvas').forEach((c) => c.setAttribute('data-old', ''))"


def charts_fit(tab, count: int, below: float = 1e6, above: float = 0) -> list[list[float]]:
    return tab.wait_for_function(CHARTS_FIT, arg={"count": count, "below": below, "above": above}).json_value()


def follow_the_window_and_the_theme(tab, count: int, height: int) -> None:
    wide = charts_fit(tab, count)  # 1360 px: two columns
    assert {round(h) for _w, h in wide} == {height}
    width = wide[0][0]
    assert width > 500 and all(abs(w - width) <= 1 for w, _h in wide)

    tab.set_viewport_size({"width": 900, "height": 900})  # two narrower columns
    narrow = charts_fit(tab, count, below=width - 100)
    tab.set_viewport_size({"width": 600, "height": 900})  # one column, wider than either of two
    charts_fit(tab, count, above=narrow[0][0] + 50, below=width)
    tab.set_viewport_size({"width": 1360, "height": 900})
    again = charts_fit(tab, count, above=width - 4, below=width + 4)
    assert {round(h) for _w, h in again} == {height}

    tab.evaluate(MARK_CHARTS)
    tab.locator("[data-theme-menu] summary").click()
    tab.get_by_role("button", name="Dark").click()
    expect(tab.locator("html")).to_have_attribute("data-theme", "dark")
    expect(tab.locator(".chart canvas[data-old]")).to_have_count(0)
    charts_fit(tab, count, above=width - 4, below=width + 4)


def test_the_job_metrics_charts_fit_their_cards_as_the_window_changes(browser_page, cluster, submit, user, workspace):
    (workspace / "hello.py").write_text("print('hello', flush=True)\n")
    chain = submit(user, name="charted", entrypoint="hello.py")
    wait_until(lambda: Chain.objects.get(pk=chain.pk).finished, timeout=30, message="job to finish")
    attempt = Attempt.objects.get(chain=chain)
    MetricPoint.objects.bulk_create(
        MetricPoint(attempt=attempt, step=step, name=name, value=value)
        for step in range(50)
        for name, value in (("loss", 2 / (step + 1)), ("lr", 0.001 * step), ("accuracy", step / 50))
    )
    tab = browser_page
    sign_in(tab)
    tab.goto(tab.base + f"/experiments/{chain.pk}/")
    expect(tab.locator("#metrics .chart-card h3")).to_have_text(["accuracy", "loss", "lr"])
    follow_the_window_and_the_theme(tab, count=3, height=210)

    # By wall-clock time: the choice is marked and the charts are drawn anew, at the same size.
    width = charts_fit(tab, 3)[0][0]
    tab.evaluate(MARK_CHARTS)
    tab.get_by_role("button", name="By time").click()
    expect(tab.get_by_role("button", name="By time")).to_have_attribute("aria-pressed", "true")
    expect(tab.get_by_role("button", name="By step")).to_have_attribute("aria-pressed", "false")
    expect(tab.locator(".chart canvas[data-old]")).to_have_count(0)
    charts_fit(tab, 3, above=width - 4, below=width + 4)


def test_the_scheduler_history_charts_fit_their_cards_as_the_window_changes(browser_page, cluster, load_history):
    from django.utils import timezone

    from apps.scheduler.history import minute_of
    from apps.scheduler.models import LoadSample

    def sample(m: int) -> LoadSample:
        used, waiting = (m // 30) % 5, (m // 45) % 3  # a step every half hour, and every 45 minutes
        return LoadSample(
            minute=m, group=cluster.group, nodes=4, used=used, free=4 - used, gpus=32, gpus_used=8 * used,
            running=used, waiting=waiting, levels={"10": [waiting, 2]},
        )  # fmt: skip

    at = timezone.now()
    now = minute_of(at)
    load_history([sample(m) for m in range(now - 180, now + 1)], now=at)  # the last three hours
    UserFactory(username="h-ops", groups=["ops"])
    tab = browser_page
    sign_in(tab, "h-ops")
    tab.goto(tab.base + "/monitor/scheduler/")
    expect(tab.locator('[data-history-group="training"] [role="img"]')).to_have_count(2)
    follow_the_window_and_the_theme(tab, count=2, height=190)
