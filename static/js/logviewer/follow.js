/* Following the live end: over the page's websocket (realtime.followLog) while it is live, by
 * polling the read endpoint every second otherwise; the end of the job is shown once. */

import { T } from "../portal/i18n.js";
import { realtime } from "../realtime.js";
import { actions, cfg, followBtn, jumpBtn, latestAttempt, positionEl, state } from "./context.js";
import { SEP_RE, bytes } from "./format.js";
import { loadLater, openTail } from "./loading.js";
import { append, scrollToBottom, showEnded, updateStatus } from "./view.js";

export function liveSocket() {
  return realtime.isLive() ? realtime : null;
}

export function setFollowing(on) {
  state.following = on;
  followBtn.setAttribute("aria-pressed", on ? "true" : "false");
  followBtn.querySelector("[data-label]").textContent = on ? T.following : T.paused;
  jumpBtn.hidden = on;
  if (!on) stopFollowing();
  updateStatus();
}

export function stopFollowing() {
  if (state.stream) { try { state.stream.close(); } catch (e) { /* already closed */ } state.stream = null; }
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

export function checkEnded() {
  if (state.finished && state.atLiveEnd && state.bottom && state.bottom.a === latestAttempt()) {
    if (!state.ended) { state.ended = true; showEnded(); }
    return true;
  }
  return false;
}

export function startFollowing() {
  stopFollowing();
  state.following = true;
  setFollowing(true);
  let gen = state.gen;
  // Catch up page by page (a few pages at most; further behind, jump to the tail).
  let pages = 0;
  function catchUp() {
    if (gen !== state.gen || !state.following) return;
    if (state.atLiveEnd) return followLive();
    if (pages++ > 4) return openTail(true);
    loadLater().then(catchUp);
  }
  catchUp();
}

export function followLive() {
  if (checkEnded()) { schedulePoll(5000); return; }
  const rt = liveSocket();
  if (!rt) { schedulePoll(1000); return; }
  let gen = state.gen;
  const cursor = state.bottom.a + ":" + state.bottom.o;
  state.stream = rt.followLog({
    chain: cfg.chain,
    rank: state.rank,
    cursor: cursor,
    tail: null,
    onLines: function (data, next) {
      if (gen !== state.gen) return;
      appendStream(data, next);
    },
    onEnd: function (status) {
      if (gen !== state.gen) return;
      state.stream = null;
      state.status = status || state.status;
      state.finished = true;
      state.atLiveEnd = true;
      checkEnded();
      updateStatus();
      schedulePoll(5000);
    },
    onBehind: function () {
      // realtime.js follows again from the same cursor at once: nothing to do but say so.
      if (gen === state.gen) positionEl.textContent = T.behind;
    },
    onError: function () {
      if (gen !== state.gen) return;
      state.stream = null;
      schedulePoll(1000);
    },
  });
}

export function appendStream(data, cursor) {
  let a = state.bottom.a, o = state.bottom.o;
  const recs = [];
  const parts = data.split("\n");
  if (parts[parts.length - 1] === "") parts.pop();
  parts.forEach(function (text) {
    const sep = SEP_RE.exec(text);
    if (sep) {
      a = Number(sep[2]);
      o = 0;
      if (state.attempts.indexOf(a) < 0) state.attempts.push(a);
      recs.push({ sep: a });
      return;
    }
    if (text === "" && recs.length === 0 && parts.length > 1 && SEP_RE.test(parts[1])) return;
    const end = o + bytes(text) + 1;
    recs.push({ a: a, o: o, e: end, text: text });
    o = end;
  });
  append(recs);
  const m = /^(\d+):(\d+)$/.exec(cursor || "");
  state.bottom = m ? { a: Number(m[1]), o: Number(m[2]) } : { a: a, o: o };
  if (state.ended) { state.ended = false; showEnded(); }
  if (state.following) scrollToBottom();
  updateStatus();
}

export function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  let gen = state.gen;
  state.pollTimer = setTimeout(function () {
    if (gen !== state.gen || !state.following) return;
    if (document.hidden) return schedulePoll(ms);
    if (liveSocket() && !state.ended) return followLive();
    loadLater().then(function (more) {
      if (gen !== state.gen || !state.following) return;
      if (more) return schedulePoll(0);
      if (checkEnded()) return schedulePoll(5000);
      schedulePoll(1000);
    });
  }, ms);
}

/** Switch between the socket and polling as the connection changes; follow a resumed job. */
export function bindFollow() {
  document.addEventListener("rota:live-state", function (e) {
    if (!state.following) return;
    if (e.detail.state === "live" && !state.stream && !state.ended) { clearTimeout(state.pollTimer); followLive(); }
    if (e.detail.state !== "live" && state.stream) { stopFollowing(); schedulePoll(1000); }
  });

  // A resumed job gets a new attempt: follow it if we were at the end.
  document.addEventListener("htmx:afterSwap", function (e) {
    const live = document.getElementById("chain-live");
    if (!live || e.target !== live && !live.contains(e.target)) return;
    const status = live.getAttribute("data-chain-status");
    if (status && state.ended && ["waiting", "held", "suspended", "canceled", "stopped", "failed", "succeeded"].indexOf(status) < 0) {
      state.ended = false;
      state.finished = false;
      showEnded();
      startFollowing();
    }
  });
}

Object.assign(actions, { checkEnded, setFollowing, startFollowing, stopFollowing });
