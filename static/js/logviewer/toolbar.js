/* The toolbar: rank, links to a line (the address points at it), follow, jumps to the top, the
 * bottom and between attempts, wrap and timestamps (remembered), "f" to follow. */

import { copy } from "../portal/clipboard.js";
import { T } from "../portal/i18n.js";
import { actions, body, followBtn, jumpBtn, linesEl, nextAttempt, prevAttempt, q, rankSelect, root, state } from "./context.js";
import { setFollowing, startFollowing } from "./follow.js";
import { openAt, openTail, reset } from "./loading.js";
import { gotoHit, renderSearchbar } from "./search.js";
import { currentAttempt, scrollToLine, updateStatus } from "./view.js";

export function setUrl(params) {
  let url = new URL(location.href);
  ["rank", "attempt", "at"].forEach(function (k) { url.searchParams.delete(k); });
  Object.keys(params).forEach(function (k) { url.searchParams.set(k, params[k]); });
  history.replaceState(null, "", url.toString());
  return url.toString();
}

export function switchRank(r, keepSearch) {
  state.rank = r;
  rankSelect.value = String(r);
  setUrl({ rank: r });
  Array.prototype.slice.call(root.querySelectorAll("[data-download-attempt]")).forEach(function (a) {
    let url = new URL(a.href, location.origin);
    url.searchParams.set("rank", r);
    a.href = url.toString();
  });
  const s = state.search;
  if (keepSearch && s && s.all) {
    s.matches = s.all.filter(function (m) { return m.rank === r; });
    s.index = -1;
    renderSearchbar();
    if (s.matches.length) { reset(); return gotoHit(0); }
  }
  return openTail(true);
}

export function jumpAttempt(direction) {
  const cur = currentAttempt();
  if (!cur) return;
  let target;
  if (direction < 0) {
    let sep = linesEl.querySelector('[data-sep="' + cur + '"]');
    const startLoaded = (state.top && state.top.a === cur && state.top.o === 0) || sep;
    const atStart = sep ? sep.offsetTop >= body.scrollTop - 4 : state.top && state.top.a === cur && state.top.o === 0 && body.scrollTop < 40;
    target = startLoaded && atStart ? prevAttempt(cur) : cur;
    if (target === null) return;
  } else {
    target = nextAttempt(cur);
    if (target === null) return;
  }
  const el = linesEl.querySelector('[data-sep="' + target + '"]');
  if (el) { setFollowing(false); scrollToLine(el); updateStatus(); return; }
  if (target === state.attempts[0] && state.top && state.top.a === target && state.top.o === 0) {
    setFollowing(false); state.programmaticScroll = true; body.scrollTop = 0; return;
  }
  openAt(target, 0, false);
}

export function toggle(button, cls, key, invert) {
  function apply(on) {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    body.classList.toggle(cls, invert ? !on : on);
  }
  let saved = null;
  try { saved = localStorage.getItem(key); } catch (e) { saved = null; }
  apply(saved === null ? button.getAttribute("aria-pressed") === "true" : saved === "1");
  button.addEventListener("click", function () {
    const on = button.getAttribute("aria-pressed") !== "true";
    apply(on);
    try { localStorage.setItem(key, on ? "1" : "0"); } catch (e) { /* private mode */ }
  });
}

/** Wire the toolbar and the line links. */
export function bindToolbar() {
  rankSelect.addEventListener("change", function () { switchRank(Number(rankSelect.value), true); });

  linesEl.addEventListener("click", function (e) {
    const g = e.target.closest(".g");
    if (!g) return;
    const line = g.closest(".ln");
    Array.prototype.slice.call(linesEl.querySelectorAll(".ln.target")).forEach(function (x) { x.classList.remove("target"); });
    line.classList.add("target");
    let url = setUrl({ rank: state.rank, attempt: line.getAttribute("data-a"), at: line.getAttribute("data-o") });
    setFollowing(false);
    copy(url, T.linkCopied);
  });

  followBtn.addEventListener("click", function () {
    if (state.following) setFollowing(false);
    else startFollowing();
  });
  jumpBtn.addEventListener("click", function () { openTail(true); });
  q("[data-log-bottom]").addEventListener("click", function () { openTail(true); });
  q("[data-log-top]").addEventListener("click", function () {
    const first = state.attempts[0];
    if (state.top && state.top.a === first && state.top.o === 0) { setFollowing(false); state.programmaticScroll = true; body.scrollTop = 0; return; }
    openAt(first, 0, false);
  });

  q("[data-log-prev-attempt]").addEventListener("click", function () { jumpAttempt(-1); });
  q("[data-log-next-attempt]").addEventListener("click", function () { jumpAttempt(1); });

  toggle(q("[data-log-wrap]"), "wrap", "rota:log-wrap", false);
  toggle(q("[data-log-ts]"), "no-ts", "rota:log-ts", true);

  document.addEventListener("keydown", function (e) {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "f" || e.key === "F") { e.preventDefault(); followBtn.click(); }
  });
}

actions.switchRank = switchRank;
