/*
 * Containers pages: live status (container.status events from the page's one socket; the page
 * re-reads itself when a shown container changes, and on reconnect), and the log of one service
 * read through the API by offset while the page is open.
 */

import { realtime } from "./realtime.js";

function watchStatus() {
  if (!document.querySelector("[data-container-id]")) return;
  realtime.connect();
  realtime.on("container.status", (event) => {
    const row = document.querySelector(`[data-container-id="${event.container_id}"]`);
    if (!row) return;
    const badge = row.querySelector("[data-container-status]");
    if (badge && badge.textContent.trim().toLowerCase() !== event.status) location.reload();
  });
  realtime.on("reconnect", () => location.reload());
}

function followLog() {
  const pre = document.querySelector("[data-container-log]");
  if (!pre) return;
  const url = pre.getAttribute("data-log-url");
  let offset = 0;
  let started = false;
  function poll() {
    if (document.hidden) {
      setTimeout(poll, 2000);
      return;
    }
    fetch(`${url}&offset=${offset}&limit=262144`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((chunk) => {
        if (chunk) {
          if (!started) {
            pre.textContent = "";
            started = true;
          }
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent += chunk.data;
          offset = chunk.next_offset;
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        setTimeout(poll, chunk && !chunk.eof ? 50 : 2000);
      })
      .catch(() => setTimeout(poll, 5000));
  }
  poll();
}

watchStatus();
followLog();
