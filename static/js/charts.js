/* Metrics charts of a job (uPlot, vendored): one chart per metric name, one line per attempt,
 * x = step (default) or wall-clock time; drag to zoom, double-click to reset. Reloaded every
 * 15 s while the job is unfinished and the tab is visible; redrawn when the theme changes. */
import { chartSet, themedAxis } from "./portal/chart-set.js";
import { onChoice } from "./portal/dom.js";
import { T, fmt } from "./portal/i18n.js";

const box = document.querySelector("[data-charts]");
if (box) start();

/** Draw the job's charts and keep them current. */
function start() {
  const grid = box.querySelector("[data-chart-grid]");
  const empty = box.querySelector("[data-chart-empty]");
  const error = box.querySelector("[data-chart-error]");
  const PALETTE = ["#4f5fe0", "#e0743a", "#16a37a", "#c2399b", "#c99a06", "#2b9bd4", "#7d5fd6", "#d9534f"];
  const numbers = {};
  (box.getAttribute("data-attempts") || "").split(",").forEach(function (pair) {
    const p = pair.split(":");
    if (p.length === 2) numbers[p[0]] = Number(p[1]);
  });
  let xMode = "step";
  let series = null;
  let signature = "";
  const charts = chartSet(grid, function () { if (series) render(); });

  function build(name, points) {
    const card = document.createElement("div");
    card.className = "chart-card";
    const title = document.createElement("h3");
    title.textContent = name;
    card.appendChild(title);
    const target = document.createElement("div");
    target.className = "chart";
    card.appendChild(target);
    grid.appendChild(card);

    const attempts = [];
    points.forEach(function (p) { if (attempts.indexOf(p.attempt_id) < 0) attempts.push(p.attempt_id); });
    const xOf = xMode === "time" ? function (p) { return Date.parse(p.t) / 1000; } : function (p) { return p.step; };
    const xs = Array.from(new Set(points.map(xOf))).sort(function (a, b) { return a - b; });
    const index = new Map(xs.map(function (x, i) { return [x, i]; }));
    const columns = attempts.map(function () { return new Array(xs.length).fill(null); });
    points.forEach(function (p) { columns[attempts.indexOf(p.attempt_id)][index.get(xOf(p))] = p.value; });

    const opts = {
      height: 210,
      scales: { x: { time: xMode === "time" } },
      axes: [themedAxis(), themedAxis({ size: 56 })],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      series: [{ label: xMode === "time" ? T.time : T.step }].concat(attempts.map(function (a, i) {
        return {
          label: fmt(T.attempt, { n: numbers[a] || i + 1 }),
          stroke: PALETTE[i % PALETTE.length],
          width: 1.6,
          spanGaps: false,
          points: { show: xs.length < 60, size: 4 },
        };
      })),
    };
    charts.draw(target, opts, [xs].concat(columns));
  }

  function render() {
    charts.clear();
    grid.removeAttribute("aria-busy");
    const names = Object.keys(series || {}).sort();
    grid.hidden = names.length === 0;
    empty.hidden = names.length !== 0;
    names.forEach(function (name) { build(name, series[name]); });
  }

  function load() {
    return fetch(box.getAttribute("data-metrics-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.statusText); return r.json(); })
      .then(function (data) {
        error.hidden = true;
        const sig = JSON.stringify(Object.keys(data.series).map(function (k) { return [k, data.series[k].length]; }));
        if (sig === signature && series) return;
        signature = sig;
        series = data.series;
        if (window.uPlot) render();
      }, function () {
        if (!series) { grid.hidden = true; error.hidden = false; }
      });
  }

  onChoice("data-chart-x", function (value) {
    xMode = value;
    if (series) render();
  });

  load();
  setInterval(function () {
    const live = document.getElementById("chain-live");
    const finished = live && ["succeeded", "failed", "stopped", "canceled"].indexOf(live.getAttribute("data-chain-status")) >= 0;
    if (!document.hidden && !finished) load();
  }, 15000);
}
