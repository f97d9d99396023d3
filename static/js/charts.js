/* Metrics charts of a job (uPlot, vendored): one chart per metric name, one line per attempt,
 * x = step (default) or wall-clock time; drag to zoom, double-click to reset. Reloaded every
 * 15 s while the job is unfinished and the tab is visible; redrawn when the theme changes. */
import { T, fmt } from "./portal/i18n.js";

const box = document.querySelector("[data-charts]");
if (box) start();

/** Draw the job's charts and keep them current. */
function start() {
  let grid = box.querySelector("[data-chart-grid]");
  let empty = box.querySelector("[data-chart-empty]");
  let error = box.querySelector("[data-chart-error]");
  let PALETTE = ["#4f5fe0", "#e0743a", "#16a37a", "#c2399b", "#c99a06", "#2b9bd4", "#7d5fd6", "#d9534f"];
  let numbers = {};
  (box.getAttribute("data-attempts") || "").split(",").forEach(function (pair) {
    let p = pair.split(":");
    if (p.length === 2) numbers[p[0]] = Number(p[1]);
  });
  let xMode = "step";
  let series = null;
  let charts = [];
  let signature = "";

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function axis() {
    return {
      stroke: css("--text-2"),
      grid: { stroke: css("--border"), width: 1 },
      ticks: { stroke: css("--border"), width: 1 },
      font: "11px " + css("--font").split(",")[0],
    };
  }

  function destroy() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
  }

  function build(name, points) {
    let card = document.createElement("div");
    card.className = "chart-card";
    let title = document.createElement("h3");
    title.textContent = name;
    card.appendChild(title);
    let target = document.createElement("div");
    target.className = "chart";
    card.appendChild(target);
    grid.appendChild(card);

    let attempts = [];
    points.forEach(function (p) { if (attempts.indexOf(p.attempt_id) < 0) attempts.push(p.attempt_id); });
    let xOf = xMode === "time" ? function (p) { return Date.parse(p.t) / 1000; } : function (p) { return p.step; };
    let xs = Array.from(new Set(points.map(xOf))).sort(function (a, b) { return a - b; });
    let index = new Map(xs.map(function (x, i) { return [x, i]; }));
    let columns = attempts.map(function () { return new Array(xs.length).fill(null); });
    points.forEach(function (p) { columns[attempts.indexOf(p.attempt_id)][index.get(xOf(p))] = p.value; });

    let opts = {
      width: Math.max(240, target.clientWidth || card.clientWidth - 28),
      height: 210,
      scales: { x: { time: xMode === "time" } },
      axes: [axis(), Object.assign(axis(), { size: 56 })],
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
    charts.push(new window.uPlot(opts, [xs].concat(columns), target));
  }

  function render() {
    destroy();
    grid.textContent = "";
    grid.removeAttribute("aria-busy");
    let names = Object.keys(series || {}).sort();
    grid.hidden = names.length === 0;
    empty.hidden = names.length !== 0;
    names.forEach(function (name) { build(name, series[name]); });
  }

  function load() {
    return fetch(box.getAttribute("data-metrics-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.statusText); return r.json(); })
      .then(function (data) {
        error.hidden = true;
        let sig = JSON.stringify(Object.keys(data.series).map(function (k) { return [k, data.series[k].length]; }));
        if (sig === signature && series) return;
        signature = sig;
        series = data.series;
        if (window.uPlot) render();
      }, function () {
        if (!series) { grid.hidden = true; error.hidden = false; }
      });
  }

  Array.prototype.slice.call(document.querySelectorAll("[data-chart-x]")).forEach(function (b) {
    b.addEventListener("click", function () {
      xMode = b.getAttribute("data-chart-x");
      document.querySelectorAll("[data-chart-x]").forEach(function (o) { o.setAttribute("aria-pressed", o === b ? "true" : "false"); });
      if (series) render();
    });
  });

  if (window.ResizeObserver) {
    let pending = null;
    new ResizeObserver(function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        charts.forEach(function (c) {
          let w = c.root.parentNode.clientWidth;
          if (w && Math.abs(w - c.width) > 4) c.setSize({ width: w, height: 210 });
        });
      }, 100);
    }).observe(grid);
  }
  window.addEventListener("rota:theme", function () { if (series) render(); });

  load();
  setInterval(function () {
    let live = document.getElementById("chain-live");
    let finished = live && ["succeeded", "failed", "stopped", "canceled"].indexOf(live.getAttribute("data-chain-status")) >= 0;
    if (!document.hidden && !finished) load();
  }, 15000);
}
