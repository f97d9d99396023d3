/* The window of the log in the DOM, [top, bottom): lines and attempt separators added at either
 * end and trimmed at the other (at most MAX_LINES lines), notes, scrolling, the status line. */

import { LANG, T, fmt } from "../portal/i18n.js";
import { MAX_LINES, actions, attemptNumber, body, countEl, latestAttempt, linesEl, positionEl, prevAttempt, state, statusLabel } from "./context.js";
import { ERR_RE, TS_RE, WARN_RE, cleanText } from "./format.js";

export function highlight(el, text) {
  const s = state.search;
  if (!s || !s.q) { el.textContent = text; return; }
  const lower = text.toLowerCase(), needle = s.q.toLowerCase();
  let at = lower.indexOf(needle);
  if (at < 0) { el.textContent = text; return; }
  el.textContent = "";
  let pos = 0;
  while (at >= 0) {
    if (at > pos) el.appendChild(document.createTextNode(text.slice(pos, at)));
    const mark = document.createElement("mark");
    mark.className = "hit";
    mark.textContent = text.slice(at, at + needle.length);
    el.appendChild(mark);
    pos = at + needle.length;
    at = lower.indexOf(needle, pos);
  }
  if (pos < text.length) el.appendChild(document.createTextNode(text.slice(pos)));
}

export function lineEl(rec) {
  let div = document.createElement("div");
  div.className = "ln";
  div.setAttribute("data-a", rec.a);
  div.setAttribute("data-o", rec.o);
  div.setAttribute("data-e", rec.e);
  const gutter = document.createElement("span");
  gutter.className = "g";
  gutter.textContent = "#";
  gutter.title = T.linkToLine || "";
  div.appendChild(gutter);
  let text = rec.text;
  const m = TS_RE.exec(text);
  if (m) {
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = m[2] + "." + m[3];
    ts.title = m[1] + " " + m[2] + "." + m[3] + " UTC";
    div.appendChild(ts);
    text = text.slice(m[0].length);
  }
  text = cleanText(text);
  if (ERR_RE.test(text)) div.classList.add("err");
  else if (WARN_RE.test(text)) div.classList.add("warn");
  const tx = document.createElement("span");
  tx.className = "tx";
  highlight(tx, text);
  div.appendChild(tx);
  return div;
}

export function sepEl(attemptId) {
  let div = document.createElement("div");
  div.className = "log-sep";
  div.setAttribute("data-sep", attemptId);
  div.setAttribute("role", "separator");
  div.textContent = fmt(T.attemptStarts, { n: attemptNumber(attemptId) || "?" });
  return div;
}

export function clearNotes() {
  Array.prototype.slice.call(linesEl.querySelectorAll(".log-note[data-transient]")).forEach(function (n) { n.remove(); });
}

export function note(text, transient) {
  let div = document.createElement("div");
  div.className = "log-note";
  if (transient) div.setAttribute("data-transient", "");
  div.textContent = text;
  return div;
}

export function renderTop() {
  let old = linesEl.querySelector("[data-top]");
  if (old) old.remove();
  let marker;
  if (!state.top) return;
  const bof = state.top.o === 0 && prevAttempt(state.top.a) === null;
  if (bof) {
    marker = note(T.startOfLog);
  } else {
    marker = document.createElement("div");
    marker.className = "log-more";
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "btn btn-sm";
    btn.textContent = T.loadEarlier;
    btn.addEventListener("click", () => actions.loadEarlier());
    marker.appendChild(btn);
  }
  marker.setAttribute("data-top", "");
  linesEl.insertBefore(marker, linesEl.firstChild);
  if (state.top.o === 0 && prevAttempt(state.top.a) !== null && !linesEl.querySelector('[data-sep="' + state.top.a + '"]')) {
    linesEl.insertBefore(sepEl(state.top.a), marker.nextSibling);
  }
}

export function append(recs) {
  if (!recs.length) return;
  let frag = document.createDocumentFragment();
  recs.forEach(function (r) { frag.appendChild(r.sep ? sepEl(r.sep) : lineEl(r)); });
  const endNote = linesEl.querySelector("[data-end]");
  linesEl.insertBefore(frag, endNote || null);
  state.lines += recs.filter(function (r) { return !r.sep; }).length;
  clearNotes();
  trimTop();
}

export function prepend(recs) {
  if (!recs.length) return;
  let frag = document.createDocumentFragment();
  recs.forEach(function (r) { frag.appendChild(r.sep ? sepEl(r.sep) : lineEl(r)); });
  let marker = linesEl.querySelector("[data-top]");
  linesEl.insertBefore(frag, marker ? marker.nextSibling : linesEl.firstChild);
  state.lines += recs.filter(function (r) { return !r.sep; }).length;
  clearNotes();
  trimBottom();
}

export function trimTop() {
  if (state.lines <= MAX_LINES) return;
  let lines = linesEl.querySelectorAll(".ln");
  const drop = state.lines - MAX_LINES;
  const first = lines[drop];
  let node = linesEl.querySelector("[data-top]");
  node = node ? node.nextSibling : linesEl.firstChild;
  while (node && node !== first) { let next = node.nextSibling; node.remove(); node = next; }
  state.lines -= drop;
  state.top = { a: Number(first.getAttribute("data-a")), o: Number(first.getAttribute("data-o")) };
  renderTop();
}

export function trimBottom() {
  if (state.lines <= MAX_LINES) return;
  let lines = linesEl.querySelectorAll(".ln");
  const keep = lines[MAX_LINES - 1];
  let node = keep.nextSibling;
  while (node && !node.hasAttribute("data-end")) { let next = node.nextSibling; node.remove(); node = next; }
  state.lines = MAX_LINES;
  state.bottom = { a: Number(keep.getAttribute("data-a")), o: Number(keep.getAttribute("data-e")) };
  state.atLiveEnd = false;
  actions.setFollowing(false);
}

export function showEmptyIfNeeded() {
  if (state.lines || linesEl.querySelector(".log-sep:not([data-top])")) return;
  let text = state.finished ? T.emptyLogFinished : T.emptyLog;
  linesEl.appendChild(note(text, true));
}

export function showEnded() {
  let old = linesEl.querySelector("[data-end]");
  if (old) old.remove();
  if (!state.ended) return;
  const n = note(fmt(T.jobEnded, { s: statusLabel(state.status) }));
  n.setAttribute("data-end", "");
  linesEl.appendChild(n);
}

export function nearBottom() { return body.scrollHeight - body.scrollTop - body.clientHeight < 60; }
export function scrollToBottom() {
  state.programmaticScroll = true;
  body.scrollTop = body.scrollHeight;
}
export function scrollToLine(el) {
  if (!el) return;
  state.programmaticScroll = true;
  body.scrollTop = Math.max(0, el.offsetTop - body.clientHeight / 3);
}
export function firstVisible() {
  const rect = body.getBoundingClientRect();
  for (let dy = 8; dy < 80; dy += 12) {
    let el = document.elementFromPoint(rect.left + 60, rect.top + dy);
    const hit = el && el.closest && el.closest(".ln, .log-sep");
    if (hit && linesEl.contains(hit)) return hit;
  }
  return linesEl.querySelector(".ln");
}
export function currentAttempt() {
  let el = firstVisible();
  if (!el) return state.bottom ? state.bottom.a : latestAttempt();
  return Number(el.getAttribute("data-a") || el.getAttribute("data-sep"));
}

export function updateStatus() {
  const parts = [];
  const a = currentAttempt();
  if (a) parts.push(fmt(T.attempt, { n: attemptNumber(a) }) + " / " + state.attempts.length);
  parts.push(fmt(T.rank, { n: state.rank }));
  parts.push(fmt(T.lines, { n: state.lines.toLocaleString(LANG) }));
  if (state.ended) parts.push(fmt(T.jobEnded, { s: statusLabel(state.status) }));
  else if (state.following) parts.push(state.stream ? T.followLive : T.followPolling);
  else parts.push(T.paused);
  positionEl.textContent = parts.join(" · ");
  const cur = state.search;
  if (cur && cur.matches) {
    const total = cur.counts ? cur.counts[String(state.rank)] || 0 : cur.matches.length;
    countEl.textContent = total ? (cur.index >= 0 ? fmt(T.matchOf, { i: cur.index + 1, n: total }) : fmt(T.matches, { n: total })) : T.noMatches;
  } else {
    countEl.textContent = "";
  }
}
