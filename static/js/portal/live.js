/* Live regions: what they do is declared in their templates, with htmx.
 *
 *   <div data-live hx-get="/experiments/12/" hx-target="#chain-live" hx-swap="outerHTML"
 *        hx-trigger="rota:chain-12 from:body delay:250ms, rota:live from:body, rota:refresh"
 *        hx-sync="this:queue last" hx-disinherit="*" data-live-poll="3"> <div id="chain-live">…
 *
 * realtime.js dispatches the events on <body> (`rota:<type>`, `rota:chain-<id>`, `rota:live` when
 * the socket opens); `delay` folds a burst into one request; `hx-sync="this:queue last"` keeps one
 * request per region in flight and one more queued after it, so an answer rendered before the
 * latest change is never the last word. The element carrying the attributes is a wrapper
 * (`display: contents`) that a swap never replaces: htmx drops a queued request of an element that
 * left the page, and the swapped content is replaced by actions (its forms) as well as by refreshes.
 *
 * What htmx cannot say without `eval` (which the CSP forbids, so no trigger filters) is here:
 * - polling while the socket is not live (data-live-poll seconds, while the tab is visible), as a
 *   `rota:refresh` event sent to the region;
 * - holding a refresh back while the user is busy in the region (typing in it, a menu of it open,
 *   the confirmation dialog open) — and the answer of one sent just before — and sending it when
 *   they are done;
 * - opening the socket, and subscribing the chains of a job's page (data-chain-page).
 */

import { realtime } from "../realtime.js";
import { $$ } from "./dom.js";
import { toast } from "./toast.js";

const REGION = "[data-live]";
const lastRequest = new WeakMap(); // region -> time of its last request

/** Is `el` a live region (the source of a background refresh)? */
export function isLiveRegion(el) {
  return !!(el && el.matches && el.matches(REGION));
}

/** Ask a region to re-fetch itself now (held back while the user is busy in it). */
export function refresh(region) {
  if (region && window.htmx) window.htmx.trigger(region, "rota:refresh");
}

function busy(region) {
  // A confirmation is being answered: keep what it acts on in place until it is closed.
  const dialog = document.getElementById("confirm-dialog");
  if (dialog && dialog.open) return true;
  const active = document.activeElement;
  if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return true;
  if (region.querySelector("details.menu[open]")) return true;
  return region.querySelector("[aria-busy=true]:not([data-chart-grid])") !== null;
}

/** Send the refreshes that were held back, where the user is done. */
function refreshDeferred() {
  $$(`${REGION}[data-live-deferred]`).forEach((region) => {
    if (busy(region)) return;
    delete region.dataset.liveDeferred;
    refresh(region);
  });
}

document.addEventListener("htmx:confirm", (e) => {
  const region = e.detail.elt;
  if (!isLiveRegion(region) || !busy(region)) return;
  e.preventDefault();
  region.dataset.liveDeferred = "1";
});
document.addEventListener("htmx:beforeRequest", (e) => {
  if (isLiveRegion(e.detail.elt)) lastRequest.set(e.detail.elt, Date.now());
});
// A refresh sent before the user got busy in the region (opened a menu, began typing) answers
// while they are: its swap would close the menu or drop what they typed. Keep the region as it
// is and fetch it again once they are done.
document.addEventListener("htmx:beforeSwap", (e) => {
  // The element that sent the request: the region for a refresh, a form for the user's own action.
  const region = e.detail.requestConfig && e.detail.requestConfig.elt;
  if (!isLiveRegion(region) || !busy(region)) return;
  e.detail.shouldSwap = false;
  region.dataset.liveDeferred = "1";
});
document.addEventListener("focusout", () => setTimeout(refreshDeferred, 50));
document.addEventListener(
  "toggle",
  (e) => {
    if (e.target.matches && e.target.matches("details.menu") && !e.target.open) setTimeout(refreshDeferred, 50);
  },
  true,
);

function refreshAll() {
  $$(REGION).forEach(refresh);
}

function pollTick() {
  if (realtime.isLive() || document.hidden) return;
  const now = Date.now();
  $$(REGION).forEach((region) => {
    const every = Number(region.getAttribute("data-live-poll") || 0);
    if (!every) return;
    const last = lastRequest.get(region);
    if (last === undefined) lastRequest.set(region, now);
    else if (now - last >= every * 1000) refresh(region);
  });
}

/** Open the page's socket (signed-in pages) and keep the regions current without it. */
export function initLive() {
  const dialog = document.getElementById("confirm-dialog");
  if (dialog) dialog.addEventListener("close", () => setTimeout(refreshDeferred, 0));
  if (document.body.getAttribute("data-authenticated") !== "1") return;
  // The server ended the socket because the sign-in ended: say so (pages keep polling, and the
  // next one sends the user to the sign-in page).
  realtime.on("error", (ev) => {
    if (ev.code === "unauthenticated") toast("error", ev.message);
  });
  // Counted subscriptions: once per page (realtime.js re-subscribes after a reconnect itself).
  $$("[data-chain-page]").forEach((el) => realtime.subscribeChain(Number(el.getAttribute("data-chain-page"))));
  realtime.connect();
  setInterval(pollTick, 1000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !realtime.isLive()) refreshAll();
  });
}
