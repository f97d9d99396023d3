/* The log viewer's page: its configuration (a JSON script from the template), its elements, and
 * the one state the viewer's modules share. `cfg` is null on a page without a log viewer. */

const configEl = document.getElementById("log-viewer-config");
export const root = document.querySelector("[data-log-viewer]");
export const cfg = configEl && root ? JSON.parse(configEl.textContent) : null;

export const PAGE = 64 * 1024;
export const CONTEXT = 8 * 1024;
export const MAX_LINES = 20000;

/** The viewer's element matching ``sel``. */
export function q(sel) {
  return root.querySelector(sel);
}
export const body = cfg && q("[data-log-body]");
export const linesEl = cfg && q("[data-log-lines]");
export const rankSelect = cfg && q("[data-log-rank]");
export const followBtn = cfg && q("[data-log-follow]");
export const jumpBtn = cfg && q("[data-log-jump]");
export const searchInput = cfg && q("[data-log-search]");
export const searchForm = cfg && q("[data-log-search-form]");
export const countEl = cfg && q("[data-log-count]");
export const searchbar = cfg && q("[data-log-searchbar]");
export const matchesEl = cfg && q("[data-log-matches]");
export const positionEl = cfg && q("[data-log-position]");

export const state = cfg && {
  rank: cfg.rank,
  attempts: cfg.attempts.map(function (a) { return a.id; }),
  top: null, // {a, o}: first byte shown
  bottom: null, // {a, o}: next byte to read
  atLiveEnd: false,
  finished: cfg.finished,
  status: cfg.status,
  following: false,
  stream: null,
  pollTimer: null,
  loading: false,
  gen: 0,
  lines: 0,
  ended: false,
  search: null, // {q, attempt, counts, ranks, matches, index, truncated}
  programmaticScroll: false,
};

/* The modules form one chain of imports, each importing only those below it (format, context,
 * view, loading, follow, search, toolbar), so production can give them content-hashed names
 * (a cycle has no fixed point). The few calls that go up the chain — the window's "Load earlier"
 * button, loading that starts or stops following, a search result switching the rank — go
 * through this registry, which the upper modules fill in when they load. */
export const actions = {
  loadEarlier: null, // loading.js
  checkEnded: null, // follow.js
  setFollowing: null,
  startFollowing: null,
  stopFollowing: null,
  switchRank: null, // toolbar.js
};

export function attemptNumber(id) { return state.attempts.indexOf(id) + 1; }
export function latestAttempt() { return state.attempts[state.attempts.length - 1]; }
export function prevAttempt(id) { let i = state.attempts.indexOf(id); return i > 0 ? state.attempts[i - 1] : null; }
export function nextAttempt(id) { let i = state.attempts.indexOf(id); return i >= 0 && i < state.attempts.length - 1 ? state.attempts[i + 1] : null; }
export function statusLabel(value) { return (cfg.statusLabels || {})[value] || value; }
