/*
 * A container's page: the log of one service, read through the API by offset while the page is
 * open. (Status is a live region of the template: htmx re-renders it on container.status events
 * and whenever the socket opens, see portal/live.js.)
 */

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

followLog();
