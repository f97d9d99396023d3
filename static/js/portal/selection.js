/* The job list: selected rows and the batch bar (the selection survives live refreshes and pages:
 * ids not on screen ride along as hidden inputs), per-page size, "more filters", the token form's
 * expiry, and client-side filtering of long lists (data-filter). */

import { $, $$ } from "./dom.js";
import { T, fmt } from "./i18n.js";

const selected = new Set();

/** Make the page's checkboxes, batch bar and batch form agree with the selection. */
export function syncSelection() {
  const boxes = $$("[data-select-row]");
  boxes.forEach((box) => {
    box.checked = selected.has(box.value);
    const row = box.closest("tr");
    if (row) row.classList.toggle("selected", box.checked);
  });
  const all = $("[data-select-all]");
  if (all) {
    const on = boxes.filter((b) => b.checked).length;
    all.checked = boxes.length > 0 && on === boxes.length;
    all.indeterminate = on > 0 && on < boxes.length;
  }
  const bar = $("[data-batch-bar]");
  if (bar) {
    bar.hidden = selected.size === 0;
    $("[data-batch-count]", bar).textContent = fmt(T.selected, { n: selected.size });
  }
  // Keep selected ids that are not on this page (a refresh may have moved them) in the form.
  const form = $("[data-batch-form]");
  if (form) {
    $$("input[data-kept-id]", form).forEach((i) => i.remove());
    const visible = new Set(boxes.map((b) => b.value));
    selected.forEach((id) => {
      if (visible.has(id)) return;
      const hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = "ids";
      hidden.value = id;
      hidden.setAttribute("data-kept-id", "");
      form.appendChild(hidden);
    });
  }
}

function clearSelection() {
  selected.clear();
  syncSelection();
}

// A batch action was applied (HX-Trigger from the server): start afresh; the list region
// refreshes itself on the same event (its hx-trigger).
document.body.addEventListener("rota:list-changed", clearSelection);

document.addEventListener("change", (e) => {
  const t = e.target;
  if (t.matches("[data-select-row]")) {
    if (t.checked) selected.add(t.value);
    else selected.delete(t.value);
    syncSelection();
  } else if (t.matches("[data-select-all]")) {
    $$("[data-select-row]").forEach((b) => (t.checked ? selected.add(b.value) : selected.delete(b.value)));
    syncSelection();
  } else if (t.matches("[data-per-page]")) {
    const url = new URL(location.href);
    url.searchParams.set("per_page", t.value);
    url.searchParams.delete("page");
    location.href = url.toString();
  } else if (t.matches("select[name=expires]")) {
    const box = $("[data-expiry-date]");
    if (box) box.hidden = t.value !== "date";
  }
});

document.addEventListener("click", (e) => {
  if (e.target.closest("[data-batch-clear]")) clearSelection();
  const more = e.target.closest("[data-more-filters]");
  if (more) {
    const open = more.closest(".filters").classList.toggle("show-all");
    more.setAttribute("aria-expanded", open ? "true" : "false");
  }
});

document.addEventListener("input", (e) => {
  const input = e.target.closest("[data-filter]");
  if (!input) return;
  const q = input.value.trim().toLowerCase();
  $$(input.getAttribute("data-filter")).forEach((el) => {
    el.hidden = q !== "" && !(el.getAttribute("data-filter-text") || el.textContent).toLowerCase().includes(q);
  });
});
