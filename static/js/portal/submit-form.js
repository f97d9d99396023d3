/* The submit form's helpers: the kind follows the entry point until the user picks one, and a
 * line under the group says what the quota allows at the chosen priority. */

import { $ } from "./dom.js";
import { T, fmt } from "./i18n.js";

export function initSubmitForm() {
  const form = $("[data-submit-form]");
  if (!form) return;
  const hintsEl = $("#quota-hints");
  const hints = hintsEl ? JSON.parse(hintsEl.textContent) : { groups: {}, levels: {} };
  const kind = form.elements.kind;
  const entry = form.elements.entrypoint;
  let kindTouched = form.getAttribute("data-resubmit") === "1";
  if (kind) kind.addEventListener("change", () => (kindTouched = true));
  if (entry && kind) {
    entry.addEventListener("input", () => {
      if (kindTouched) return;
      const v = entry.value.trim().toLowerCase();
      kind.value = /\.py$/.test(v) ? "python" : /\.(sh|bash)$/.test(v) ? "bash" : v ? "executable" : "python";
    });
  }
  const hint = $("[data-quota-hint]", form);
  function updateHint() {
    if (!hint) return;
    const group = form.elements.group ? form.elements.group.value : "";
    const level = form.elements.priority ? form.elements.priority.value : "-1";
    const nodes = Number(form.elements.nodes ? form.elements.nodes.value : 1) || 1;
    const quota = (hints.groups || {})[group] || {};
    const levels = Object.keys(quota)
      .map(Number)
      .filter((l) => quota[l] > 0)
      .sort((a, b) => b - a);
    const biggest = levels.reduce((m, l) => Math.max(m, quota[l]), 0);
    const name = (l) => (hints.levels || {})[String(l)] || String(l);
    let text = "";
    let warn = false;
    if (!group) text = "";
    else if (nodes > biggest) {
      text = fmt(T.quotaTooBig, { g: group, n: biggest });
      warn = true;
    } else if (level === "-1") text = levels.length ? fmt(T.quotaAuto, { p: name(levels[0]), g: group, n: quota[levels[0]] }) : "";
    else if (!quota[level]) {
      text = fmt(T.quotaNone, { p: name(level), g: group });
      warn = true;
    } else text = fmt(T.quotaAt, { n: quota[level], p: name(level), g: group });
    hint.textContent = text;
    hint.classList.toggle("error-text", warn);
  }
  for (const n of ["group", "priority", "nodes"]) {
    if (form.elements[n]) {
      form.elements[n].addEventListener("change", updateHint);
      form.elements[n].addEventListener("input", updateHint);
    }
  }
  updateHint();
  const firstError = $("[aria-invalid=true]", form);
  if (firstError) firstError.focus();
}
