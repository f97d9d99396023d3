/* Relative times (<time data-relative>, refreshed every 30 s) and running-time tickers
 * (data-since / data-base, every second), in the page's language. */

import { $$ } from "./dom.js";
import { LANG, T, fmt } from "./i18n.js";

const rtf = new Intl.RelativeTimeFormat(LANG, { numeric: "auto" });

function relative(date) {
  const secs = (date.getTime() - Date.now()) / 1000;
  const abs = Math.abs(secs);
  if (abs < 45) return T.justNow || rtf.format(0, "second");
  if (abs < 2700) return rtf.format(Math.round(secs / 60), "minute");
  if (abs < 64800) return rtf.format(Math.round(secs / 3600), "hour");
  if (abs < 30 * 86400) return rtf.format(Math.round(secs / 86400), "day");
  return date.toLocaleDateString(LANG, { year: "numeric", month: "short", day: "numeric" });
}

/** 93784 → "1d 2h" (translated). */
export function duration(total) {
  total = Math.max(0, Math.floor(total));
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d) return fmt(T.durDH, { d, h });
  if (h) return fmt(T.durHM, { h, m });
  if (m) return fmt(T.durMS, { m, s });
  return fmt(T.durS, { s });
}

/** Write the relative times under `root`. */
export function updateTimes(root) {
  $$("time[data-relative]", root).forEach((t) => {
    const date = new Date(t.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    if (!t.title) t.title = date.toLocaleString(LANG);
    t.textContent = relative(date);
  });
}

const started = new WeakMap(); // ticker -> {t0, base}

/** Advance every running-time ticker on the page. */
export function updateTickers() {
  const now = Date.now();
  $$("[data-since]").forEach((el) => {
    if (!started.has(el)) {
      const base = el.getAttribute("data-base");
      started.set(el, {
        t0: now,
        base: base !== null && base !== "" ? Number(base) : (now - new Date(el.getAttribute("data-since")).getTime()) / 1000,
      });
    }
    const { t0, base } = started.get(el);
    el.textContent = duration(base + (now - t0) / 1000);
  });
}

/** Keep the times on the page current. */
export function startClocks() {
  updateTickers();
  setInterval(updateTickers, 1000);
  setInterval(() => updateTimes(document), 30000);
}
