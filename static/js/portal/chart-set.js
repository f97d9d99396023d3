/* What the portal's uPlot charts have in common (the job's metrics, charts.js; the scheduler's
 * history, monitor-history.js): axes in the theme's colours, a first width taken from the chart's
 * card, and a set of charts drawn in one grid that follows the grid's width as the window (or the
 * layout) changes and is drawn anew when the theme changes, since uPlot paints its colours into a
 * canvas and CSS cannot restyle it. uPlot itself is the vendored classic script (window.uPlot). */

const MIN_WIDTH = 240; // a narrower chart has no room for its ticks
const CARD_PADDING = 28; // .chart-card's padding (14 px a side), while the chart's own box has no width yet
const RESIZE_SETTLE_MS = 100; // one redraw at the end of a window drag, not one a frame
const RESIZE_SLACK = 4; // px: ignore the scroll bar coming and going

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** uPlot options for an axis in the current theme's colours and font; `extra` (e.g. `{ size: 56 }`) on top. */
export function themedAxis(extra) {
  return Object.assign(
    {
      stroke: css("--text-2"),
      grid: { stroke: css("--border"), width: 1 },
      ticks: { stroke: css("--border"), width: 1 },
      font: `11px ${css("--font").split(",")[0]}`,
    },
    extra,
  );
}

/**
 * The charts drawn in `grid`: each fits its box's width whenever the grid's width changes, and
 * `redraw` is called when the theme changes (the page draws them all again; the axes read the new
 * colours). Returns `draw(target, opts, data)`, which adds a chart in `target` (a `.chart` box,
 * already in its card in the page) at the box's width, and `clear()`, which destroys the charts
 * and empties the grid.
 */
export function chartSet(grid, redraw) {
  let charts = [];

  function fit() {
    charts.forEach((chart) => {
      const width = chart.root.parentNode.clientWidth;
      if (width && Math.abs(width - chart.width) > RESIZE_SLACK) chart.setSize({ width, height: chart.height });
    });
  }

  if (window.ResizeObserver) {
    let pending = null;
    new ResizeObserver(() => {
      clearTimeout(pending);
      pending = setTimeout(fit, RESIZE_SETTLE_MS);
    }).observe(grid);
  }
  window.addEventListener("rota:theme", redraw);

  return {
    draw(target, opts, data) {
      const width = Math.max(MIN_WIDTH, target.clientWidth || target.parentNode.clientWidth - CARD_PADDING);
      charts.push(new window.uPlot(Object.assign({ width }, opts), data, target));
    },
    clear() {
      charts.forEach((chart) => chart.destroy());
      charts = [];
      grid.textContent = "";
    },
  };
}
