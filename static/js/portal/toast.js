/* Toasts: server messages (rendered, or out of band with an htmx response) and script ones. */

import { $, $$, icon } from "./dom.js";
import { T } from "./i18n.js";

const ICONS = { success: "circle-check", error: "circle-alert", warning: "triangle-alert", info: "info" };
const armed = new WeakSet();

/** Start a toast's timer (errors stay longer; hovering holds it). */
export function armToast(el) {
  if (armed.has(el)) return;
  armed.add(el);
  let timer = setTimeout(() => el.remove(), el.classList.contains("toast-error") ? 12000 : 6000);
  el.addEventListener("mouseenter", () => clearTimeout(timer));
  el.addEventListener("mouseleave", () => {
    timer = setTimeout(() => el.remove(), 3000);
  });
}

/** Show `text` as a toast of `kind` (success, error, warning, info). */
export function toast(kind, text) {
  const box = $("#toasts");
  if (!box) return;
  const el = document.createElement("div");
  el.className = `toast toast-${kind}`;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.setAttribute("data-toast", "");
  el.innerHTML = `${icon(ICONS[kind] || "info")}<div></div><button class="btn btn-ghost btn-xs btn-icon close" type="button" data-dismiss>${icon("x")}</button>`;
  el.children[1].textContent = text;
  el.lastChild.setAttribute("aria-label", T.cancel || "Dismiss");
  box.appendChild(el);
  armToast(el);
}

/** Arm the toasts on the page, and whatever arrives later (htmx adds them out of band). */
export function initToasts() {
  const box = $("#toasts");
  if (!box) return;
  $$("[data-toast]", box).forEach(armToast);
  new MutationObserver(() => $$("[data-toast]", box).forEach(armToast)).observe(box, { childList: true });
}
