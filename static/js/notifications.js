/*
 * The notification badge in the top bar: its number changes live over the page's one websocket
 * (realtime.js) when a notification arrives ("notification.created") or is read in another tab
 * ("notification.read"); whenever the socket (re)opens, the number is re-fetched, so an event
 * missed while offline never leaves it wrong. Without the socket the server-rendered number stands.
 */

import { realtime } from "./realtime.js";

const badge = document.querySelector("[data-notifications-badge]");

function show(count) {
  const number = badge.querySelector("[data-unread-count]");
  number.textContent = String(count);
  number.classList.toggle("hidden", !count);
  badge.setAttribute("data-unread", String(count));
}

function refetch() {
  fetch(badge.getAttribute("data-unread-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((data) => {
      if (data && typeof data.unread === "number") show(data.unread);
    })
    .catch(() => {});
}

if (badge) {
  realtime.on("notification.created", (ev) => show(ev.unread_count));
  realtime.on("notification.read", (ev) => show(ev.unread_count));
  realtime.on("open", refetch); // every open: the first, and each reconnect
}
