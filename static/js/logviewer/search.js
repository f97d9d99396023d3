/* Searching the log: the server counts matches per rank in one attempt; the matches of the shown
 * rank are listed, highlighted, and visited with Enter / Shift+Enter. */

import { T, fmt } from "../portal/i18n.js";
import { toast } from "../portal/toast.js";
import { actions, attemptNumber, cfg, countEl, latestAttempt, linesEl, matchesEl, q, searchForm, searchInput, searchbar, state } from "./context.js";
import { setFollowing } from "./follow.js";
import { TS_RE, cleanText } from "./format.js";
import { openAt } from "./loading.js";
import { currentAttempt, highlight, scrollToLine, updateStatus } from "./view.js";

export function rehighlight() {
  Array.prototype.slice.call(linesEl.querySelectorAll(".ln .tx")).forEach(function (tx) { highlight(tx, tx.textContent); });
}

export function runSearch(text) {
  text = text.trim();
  if (!text) { clearSearch(); return Promise.resolve(); }
  const attempt = currentAttempt() || latestAttempt();
  state.search = { q: text, attempt: attempt, matches: null, index: -1 };
  countEl.textContent = T.searching;
  rehighlight();
  const url = new URL(cfg.searchUrl, location.origin);
  url.searchParams.set("q", text);
  url.searchParams.set("attempt", attempt);
  return fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.json().then(function (d) { if (!r.ok) throw new Error((d.error && d.error.message) || r.statusText); return d; }); })
    .then(function (data) {
      if (!state.search || state.search.q !== text) return;
      state.search.counts = data.counts;
      state.search.ranks = data.ranks_matching;
      state.search.all = data.matches;
      state.search.truncated = data.truncated;
      state.search.matches = data.matches.filter(function (m) { return m.rank === state.rank; });
      renderSearchbar();
      updateStatus();
    }, function (err) {
      countEl.textContent = "";
      toast("error", fmt(T.searchFailed, { e: err.message }));
    });
}

export function renderSearchbar() {
  let s = state.search;
  searchbar.textContent = "";
  matchesEl.textContent = "";
  if (!s || !s.matches) { searchbar.hidden = true; matchesEl.hidden = true; return; }
  searchbar.hidden = false;
  const label = document.createElement("strong");
  label.textContent = fmt(T.attempt, { n: attemptNumber(s.attempt) }) + " · " + T.ranksMatching;
  searchbar.appendChild(label);
  const ranks = Object.keys(s.counts || {}).map(Number).sort(function (x, y) { return x - y; });
  ranks.forEach(function (r) {
    const n = s.counts[String(r)];
    let b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-xs rank-hit";
    b.textContent = fmt(T.rank, { n: r }) + " (" + n + ")";
    b.disabled = !n;
    if (r === state.rank) b.setAttribute("aria-current", "true");
    b.addEventListener("click", function () { actions.switchRank(r, true); });
    searchbar.appendChild(b);
  });
  if (s.truncated) { let t = document.createElement("span"); t.className = "subtle"; t.textContent = T.truncatedResults; searchbar.appendChild(t); }
  if (s.matches.length) {
    matchesEl.hidden = false;
    s.matches.forEach(function (m, i) {
      let b = document.createElement("button");
      b.type = "button";
      const lno = document.createElement("span");
      lno.className = "lno";
      lno.textContent = "L" + m.line;
      const tx = document.createElement("span");
      highlight(tx, cleanText(m.text.replace(TS_RE, "")).slice(0, 300));
      b.appendChild(lno);
      b.appendChild(tx);
      b.addEventListener("click", function () { gotoHit(i); });
      matchesEl.appendChild(b);
    });
  } else {
    matchesEl.hidden = true;
  }
}

export function gotoHit(i) {
  let s = state.search;
  if (!s || !s.matches || !s.matches.length) return;
  s.index = (i + s.matches.length) % s.matches.length;
  const m = s.matches[s.index];
  const el = linesEl.querySelector('.ln[data-a="' + s.attempt + '"][data-o="' + m.offset + '"]');
  const shown = el ? Promise.resolve(el) : openAt(s.attempt, m.offset, false);
  shown.then(function (target) {
    Array.prototype.slice.call(linesEl.querySelectorAll("mark.current, .ln.target")).forEach(function (x) { x.classList.remove("current", "target"); });
    if (target && target.classList) {
      target.classList.add("target");
      const mark = target.querySelector("mark.hit");
      if (mark) mark.classList.add("current");
      setFollowing(false);
      scrollToLine(target);
    }
    updateStatus();
  });
}

export function clearSearch() {
  state.search = null;
  searchbar.hidden = true;
  matchesEl.hidden = true;
  rehighlight();
  updateStatus();
}

/** The search box and its buttons. */
export function bindSearch() {
  searchForm.addEventListener("submit", function (e) { e.preventDefault(); });
  searchInput.addEventListener("keydown", function (e) {
    if (e.key === "Enter") {
      e.preventDefault();
      let s = state.search;
      if (!s || s.q !== searchInput.value.trim() || !s.matches) runSearch(searchInput.value).then(function () { gotoHit(0); });
      else gotoHit(s.index + (e.shiftKey ? -1 : 1));
    } else if (e.key === "Escape") {
      searchInput.value = "";
      clearSearch();
    }
  });
  searchInput.addEventListener("search", function () { if (!searchInput.value) clearSearch(); });
  q("[data-log-hit-next]").addEventListener("click", function () { if (state.search) gotoHit(state.search.index + 1); else runSearch(searchInput.value).then(function () { gotoHit(0); }); });
  q("[data-log-hit-prev]").addEventListener("click", function () { if (state.search) gotoHit(state.search.index - 1); });
}
