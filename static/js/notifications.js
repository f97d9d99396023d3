/*
 * The notification badge in the top bar: its number changes live over the page's one websocket
 * (realtime.js) when a notification arrives ("notification.created") or is read in another tab
 * ("notification.read"); whenever the socket (re)opens, the number is re-fetched, so an event
 * missed while offline never leaves it wrong. Without the socket the server-rendered number stands.
 */
(function () {
  "use strict";

  function badge() { return document.querySelector("[data-notifications-badge]"); }

  function show(count) {
    var el = badge();
    if (!el) return;
    var number = el.querySelector("[data-unread-count]");
    number.textContent = String(count);
    number.classList.toggle("hidden", !count);
    el.setAttribute("data-unread", String(count));
  }

  function refetch() {
    var el = badge();
    if (!el || !window.fetch) return;
    fetch(el.getAttribute("data-unread-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && typeof data.unread === "number") show(data.unread); })
      .catch(function () {});
  }

  function init() {
    var rt = window.Rota && window.Rota.realtime;
    if (!badge() || !rt || typeof rt.on !== "function") return;
    rt.on("notification.created", function (ev) { show(ev.unread_count); });
    rt.on("notification.read", function (ev) { show(ev.unread_count); });
    rt.on("open", refetch);
    rt.on("reconnect", refetch);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
