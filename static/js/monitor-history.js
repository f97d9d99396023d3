/* The scheduler overview's charts (uPlot, vendored): per node group, nodes used / free and jobs
 * running / waiting (per priority) over the last 24 hours or 7 days, from the JSON of
 * /monitor/scheduler/history/. Each chart carries a text summary (aria-label) and each group a
 * table of the same figures (hourly, or every six hours for 7 days) for screen readers and for
 * reading exact values. Reloaded every minute while the tab is visible; redrawn on theme change.
 * Labels come from the card's data-label-* attributes (translated by the template). An ES module. */
import { chartSet, themedAxis } from "./portal/chart-set.js";
import { onChoice } from "./portal/dom.js";

const box = document.querySelector("[data-history]");
if (box) start();

/** Draw the history charts and tables, and keep them current. */
function start() {
  const grid = box.querySelector("[data-history-grid]");
  const empty = box.querySelector("[data-history-empty]");
  const error = box.querySelector("[data-history-error]");
  const L = {};
  Array.prototype.forEach.call(box.attributes, function (a) {
    if (a.name.indexOf("data-label-") === 0) L[a.name.slice(11)] = a.value;
  });
  const COLORS = { used: "#4f5fe0", free: "#16a37a", nodes: "#8a8f98", running: "#e0743a", waiting: "#c2399b" };
  const LEVEL_COLORS = ["#d9534f", "#c99a06", "#2b9bd4", "#7d5fd6", "#16a37a", "#e0743a", "#4f5fe0", "#8a8f98", "#c2399b"];
  let span = "24h";
  let data = null;
  let signature = "";
  const charts = chartSet(grid, function () { if (data) render(); });

  function fmt(text, values) {
    return String(text || "").replace(/\{(\w+)\}/g, function (_m, key) { return key in values ? String(values[key]) : ""; });
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function stamp(seconds) {
    const d = new Date(seconds * 1000);
    const pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function last(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }
  function stats(values) {
    let n = 0, sum = 0, max = null;
    values.forEach(function (v) { if (v !== null) { n++; sum += v; if (max === null || v > max) max = v; } });
    return { now: last(values), max: max, mean: n ? Math.round((sum / n) * 10) / 10 : null };
  }
  function summary(label, values) {
    const s = stats(values);
    if (s.now === null) return fmt(L["no-data"], { name: label });
    return fmt(L.summary, { name: label, now: s.now, max: s.max, mean: s.mean });
  }

  function chart(card, title, lines) {
    const wrap = el("div", "chart-card");
    wrap.appendChild(el("h4", "", title));
    const target = el("div", "chart");
    target.setAttribute("role", "img");
    target.setAttribute("aria-label", title + ". " + lines.map(function (l) { return summary(l.label, l.values); }).join(" "));
    wrap.appendChild(target);
    card.appendChild(wrap);
    const opts = {
      height: 190,
      scales: { x: { time: true }, y: { range: function (_u, _min, max) { return [0, Math.max(1, max)]; } } },
      axes: [themedAxis(), themedAxis({ size: 44 })],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      series: [{ label: L.time }].concat(lines.map(function (l) {
        return { label: l.label, stroke: l.color, width: 1.6, dash: l.dash, spanGaps: false, points: { show: false } };
      })),
    };
    charts.draw(target, opts, [data.t].concat(lines.map(function (l) { return l.values; })));
  }

  function table(card, group) {
    const details = el("details", "history-table");
    details.appendChild(el("summary", "", fmt(L.table, { name: group.name })));
    const every = span === "24h" ? 60 : 36; // hourly, or every six hours
    const heads = [L.time, L.used, L.free, L.nodes, L["gpus-used"], L.running, L.waiting];
    const tbl = el("table", "table table-compact");
    const tr = el("tr");
    heads.forEach(function (h, i) { let th = el("th", i ? "right" : "", h); th.scope = "col"; tr.appendChild(th); });
    const thead = el("thead"); thead.appendChild(tr); tbl.appendChild(thead);
    const tbody = el("tbody");
    for (let i = data.t.length - 1; i >= 0; i -= every) {
      if (group.nodes[i] === null) continue;
      const row = el("tr");
      row.appendChild(el("td", "", stamp(data.t[i])));
      [group.used[i], group.free[i], group.nodes[i], group.gpus_used[i] + " / " + group.gpus[i], group.running[i], group.waiting[i]]
        .forEach(function (v) { row.appendChild(el("td", "right num", String(v))); });
      tbody.appendChild(row);
    }
    tbl.appendChild(tbody);
    const scroll = el("div", "table-wrap");
    scroll.appendChild(tbl);
    details.appendChild(scroll);
    card.appendChild(details);
  }

  function render() {
    charts.clear();
    grid.removeAttribute("aria-busy");
    const groups = (data && data.groups) || [];
    empty.hidden = groups.length !== 0;
    groups.forEach(function (g) {
      const section = el("section", "stack history-group");
      section.setAttribute("data-history-group", g.name);
      section.appendChild(el("h3", "", g.name));
      const pair = el("div", "grid grid-2");
      section.appendChild(pair);
      grid.appendChild(section);
      chart(pair, L["nodes-title"], [
        { label: L.used, values: g.used, color: COLORS.used },
        { label: L.free, values: g.free, color: COLORS.free },
        { label: L.nodes, values: g.nodes, color: COLORS.nodes, dash: [4, 4] },
      ]);
      const levels = Object.keys(g.waiting_by_level).map(function (name, i) {
        return { label: fmt(L["waiting-at"], { level: name }), values: g.waiting_by_level[name], color: LEVEL_COLORS[i % LEVEL_COLORS.length], dash: [3, 3] };
      });
      chart(pair, L["jobs-title"], [
        { label: L.running, values: g.running, color: COLORS.running },
        { label: L.waiting, values: g.waiting, color: COLORS.waiting },
      ].concat(levels));
      table(section, g);
    });
  }

  function load() {
    const url = box.getAttribute("data-history-url") + "?range=" + encodeURIComponent(span);
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.statusText); return r.json(); })
      .then(function (json) {
        error.hidden = true;
        const sig = JSON.stringify([json.range, json.t[json.t.length - 1], json.groups.map(function (g) { return [g.name, last(g.nodes), last(g.waiting)]; })]);
        if (sig === signature && data) return;
        signature = sig;
        data = json;
        if (window.uPlot) render();
      }, function () {
        if (!data) { grid.textContent = ""; error.hidden = false; }
      });
  }

  onChoice("data-history-range", function (value) {
    span = value;
    data = null;
    signature = "";
    load();
  });

  load();
  setInterval(function () { if (!document.hidden) load(); }, 60000);
}
