/* Reading the log through the portal's read endpoint: the tail, around an offset, a page earlier
 * (scrolling up, across attempts) or later; scrolling near either end loads more. */

import { T } from "../portal/i18n.js";
import { CONTEXT, PAGE, actions, body, cfg, latestAttempt, linesEl, nextAttempt, prevAttempt, state } from "./context.js";
import { records } from "./format.js";
import { append, clearNotes, nearBottom, note, prepend, renderTop, scrollToBottom, scrollToLine, showEmptyIfNeeded, showEnded, updateStatus } from "./view.js";

export function read(params) {
  const url = new URL(cfg.readUrl, location.origin);
  url.searchParams.set("rank", state.rank);
  Object.keys(params).forEach(function (k) { if (params[k] !== null && params[k] !== undefined) url.searchParams.set(k, params[k]); });
  return fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
    if (r.redirected && /\/login\//.test(r.url)) { location.href = r.url; throw new Error("signed out"); }
    return r.json().then(function (data) {
      if (!r.ok) throw new Error(data.error || r.statusText);
      return data;
    });
  });
}

export function applyMeta(page) {
  if (page.attempt_ids && page.attempt_ids.length !== state.attempts.length) state.attempts = page.attempt_ids.slice();
  state.finished = page.finished;
  state.status = page.status;
}

export function reset() {
  state.gen += 1;
  actions.stopFollowing();
  linesEl.textContent = "";
  state.top = state.bottom = null;
  state.lines = 0;
  state.atLiveEnd = false;
  state.ended = false;
  const loading = note(T.loading, true);
  linesEl.appendChild(loading);
  return state.gen;
}

export function failed(err) {
  clearNotes();
  linesEl.appendChild(note((T.requestFailed || "") + " (" + err.message + ")", true));
}

export function openTail(follow) {
  let gen = reset();
  return read({ mode: "tail", limit: PAGE, attempt: latestAttempt() }).then(function (page) {
    if (gen !== state.gen) return;
    applyMeta(page);
    state.top = { a: page.attempt_id, o: page.start };
    state.bottom = { a: page.attempt_id, o: page.end };
    clearNotes();
    renderTop();
    append(records(page.data, page.attempt_id, page.start));
    state.atLiveEnd = page.attempt_id === latestAttempt() && page.eof;
    showEmptyIfNeeded();
    scrollToBottom();
    if (follow) actions.startFollowing();
    else actions.checkEnded();
    updateStatus();
  }, failed);
}

export function openAt(attempt, offset, mark) {
  let gen = reset();
  const before = offset > 0 ? read({ mode: "backward", attempt: attempt, offset: offset, limit: CONTEXT }) : Promise.resolve(null);
  const after = read({ mode: "forward", attempt: attempt, offset: offset, limit: PAGE });
  return Promise.all([before, after]).then(function (pages) {
    if (gen !== state.gen) return;
    const b = pages[0], f = pages[1];
    applyMeta(f);
    state.top = { a: attempt, o: b ? b.start : f.start };
    state.bottom = { a: attempt, o: f.end };
    clearNotes();
    renderTop();
    if (b) append(records(b.data, attempt, b.start));
    append(records(f.data, attempt, f.start));
    state.atLiveEnd = attempt === latestAttempt() && f.eof;
    if (f.eof && nextAttempt(attempt)) {
      append([{ sep: nextAttempt(attempt) }]);
      state.bottom = { a: nextAttempt(attempt), o: 0 };
    }
    showEmptyIfNeeded();
    let target = linesEl.querySelector('.ln[data-a="' + attempt + '"][data-o="' + offset + '"]');
    if (!target && offset === 0) target = linesEl.querySelector('[data-sep="' + attempt + '"]') || linesEl.querySelector(".ln");
    if (mark && target && target.classList.contains("ln")) target.classList.add("target");
    scrollToLine(target);
    actions.setFollowing(false);
    updateStatus();
    return target;
  }, failed);
}

export function loadEarlier() {
  if (!state.top || state.loading) return Promise.resolve();
  const top = state.top;
  let gen = state.gen;
  const prev = prevAttempt(top.a);
  if (top.o === 0 && prev === null) return Promise.resolve();
  state.loading = true;
  const request = top.o > 0
    ? read({ mode: "backward", attempt: top.a, offset: top.o, limit: PAGE })
    : read({ mode: "tail", attempt: prev, limit: PAGE });
  const heightBefore = body.scrollHeight;
  return request.then(function (page) {
    state.loading = false;
    if (gen !== state.gen) return;
    const recs = records(page.data, page.attempt_id, page.start);
    if (top.o === 0) {
      const existing = linesEl.querySelector('[data-sep="' + top.a + '"]');
      if (!existing) recs.push({ sep: top.a });
    }
    state.top = { a: page.attempt_id, o: page.start };
    prepend(recs);
    renderTop();
    state.programmaticScroll = true;
    body.scrollTop += body.scrollHeight - heightBefore;
    updateStatus();
  }, function (err) { state.loading = false; failed(err); });
}

/** One page forwards from the bottom. Resolves true when more is waiting. */
export function loadLater() {
  if (!state.bottom || state.loading) return Promise.resolve(false);
  const bottom = state.bottom;
  let gen = state.gen;
  state.loading = true;
  return read({ mode: "forward", attempt: bottom.a, offset: bottom.o, limit: PAGE }).then(function (page) {
    state.loading = false;
    if (gen !== state.gen) return false;
    applyMeta(page);
    append(records(page.data, bottom.a, page.start));
    state.bottom = { a: bottom.a, o: page.end };
    let more = !page.eof;
    if (page.eof) {
      const next = nextAttempt(bottom.a);
      if (next) {
        append([{ sep: next }]);
        state.bottom = { a: next, o: 0 };
        more = true;
        if (state.ended) { state.ended = false; showEnded(); }
      }
    }
    state.atLiveEnd = !more && bottom.a === latestAttempt();
    if (page.data) clearNotes();
    showEmptyIfNeeded();
    if (state.following) scrollToBottom();
    updateStatus();
    return more;
  }, function (err) { state.loading = false; failed(err); return false; });
}

/** Load more as the reader scrolls near either end. */
export function bindScroll() {
  body.addEventListener("scroll", function () {
    if (state.programmaticScroll) { state.programmaticScroll = false; return; }
    if (state.following && !nearBottom()) actions.setFollowing(false);
    if (body.scrollTop < 150) loadEarlier();
    if (!state.following && nearBottom() && !state.atLiveEnd) loadLater();
    updateStatus();
  });
}

actions.loadEarlier = loadEarlier;
