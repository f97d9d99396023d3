/*
 * Containers pages: live status (container.status events from the page's one socket; the page
 * re-reads itself when a shown container changes, and on reconnect), and the log of one service
 * read through the API by offset while the page is open.
 */
(function (global) {
  "use strict";
  var doc = global.document;

  function shown(id) {
    return doc.querySelector('[data-container-id="' + id + '"]') !== null;
  }

  function refresh() {
    global.location.reload();
  }

  function watchStatus() {
    var rt = global.Rota && global.Rota.realtime;
    if (!rt || !doc.querySelector("[data-container-id]")) return;
    rt.connect();
    rt.on("container.status", function (event) {
      if (!shown(event.container_id)) return;
      var row = doc.querySelector('[data-container-id="' + event.container_id + '"]');
      var badge = row.querySelector("[data-container-status]");
      if (badge && badge.textContent.trim().toLowerCase() !== event.status) refresh();
    });
    rt.on("reconnect", refresh);
  }

  function followLog() {
    var pre = doc.querySelector("[data-container-log]");
    if (!pre) return;
    var url = pre.getAttribute("data-log-url");
    var offset = 0;
    var started = false;
    function poll() {
      if (doc.hidden) return global.setTimeout(poll, 2000);
      global
        .fetch(url + "&offset=" + offset + "&limit=262144", { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (chunk) {
          if (chunk) {
            if (!started) { pre.textContent = ""; started = true; }
            var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.textContent += chunk.data;
            offset = chunk.next_offset;
            if (atBottom) pre.scrollTop = pre.scrollHeight;
          }
          global.setTimeout(poll, chunk && !chunk.eof ? 50 : 2000);
        })
        .catch(function () { global.setTimeout(poll, 5000); });
    }
    poll();
  }

  function start() { watchStatus(); followLog(); }
  if (doc.readyState === "loading") doc.addEventListener("DOMContentLoaded", start);
  else start();
})(window);
