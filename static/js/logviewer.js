/* The log viewer: one rank of a job, across its attempts.
 *
 * The DOM holds a window of the log, [top, bottom), where a position is (attempt id, byte offset)
 * — never the whole file. Pages come from the portal's read endpoint (forwards from an offset,
 * backwards to one, or the tail of an attempt), so the viewer knows the byte offset of every
 * line: links to a line are ?rank=R&attempt=A&at=OFFSET, and scrolling up pages backwards, across
 * attempt separators too. Following the live end uses the websocket (Rota.realtime.followLog)
 * when it is live, and polls the read endpoint every second otherwise.
 */
(function () {
  "use strict";

  var configEl = document.getElementById("log-viewer-config");
  var root = document.querySelector("[data-log-viewer]");
  if (!configEl || !root) return;
  var cfg = JSON.parse(configEl.textContent);
  var Rota = window.Rota || {};
  var T = Rota.t || {};
  var fmt = Rota.fmt || function (s) { return s; };
  var LANG = document.documentElement.lang || "en";

  var PAGE = 64 * 1024;
  var CONTEXT = 8 * 1024;
  var MAX_LINES = 20000;
  var TS_RE = /^\[(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.(\d{3})\d{3}\] /;
  var SEP_RE = /^──── attempt (\d+) \(id (\d+)\) ────$/;
  var ANSI_RE = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;
  var ERR_RE = /\b(Traceback|ERROR|Error:|Exception|FATAL|CUDA error|Killed)\b/;
  var WARN_RE = /\b(WARNING|WARN|Warning:)\b/;

  function q(sel) { return root.querySelector(sel); }
  var body = q("[data-log-body]");
  var linesEl = q("[data-log-lines]");
  var rankSelect = q("[data-log-rank]");
  var followBtn = q("[data-log-follow]");
  var jumpBtn = q("[data-log-jump]");
  var searchInput = q("[data-log-search]");
  var searchForm = q("[data-log-search-form]");
  var countEl = q("[data-log-count]");
  var searchbar = q("[data-log-searchbar]");
  var matchesEl = q("[data-log-matches]");
  var positionEl = q("[data-log-position]");
  var encoder = new TextEncoder();

  var state = {
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

  // ------------------------------------------------------------------------ helpers

  function bytes(text) { return encoder.encode(text).length; }
  function attemptNumber(id) { return state.attempts.indexOf(id) + 1; }
  function latestAttempt() { return state.attempts[state.attempts.length - 1]; }
  function prevAttempt(id) { var i = state.attempts.indexOf(id); return i > 0 ? state.attempts[i - 1] : null; }
  function nextAttempt(id) { var i = state.attempts.indexOf(id); return i >= 0 && i < state.attempts.length - 1 ? state.attempts[i + 1] : null; }
  function statusLabel(value) { return (cfg.statusLabels || {})[value] || value; }

  function read(params) {
    var url = new URL(cfg.readUrl, location.origin);
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

  function applyMeta(page) {
    if (page.attempt_ids && page.attempt_ids.length !== state.attempts.length) state.attempts = page.attempt_ids.slice();
    state.finished = page.finished;
    state.status = page.status;
  }

  // ------------------------------------------------------------------------ rendering

  function cleanText(text) {
    if (text.indexOf("\r") >= 0) {
      var parts = text.split("\r").filter(function (p) { return p !== ""; });
      text = parts.length ? parts[parts.length - 1] : "";
    }
    return text.replace(ANSI_RE, "");
  }

  function highlight(el, text) {
    var s = state.search;
    if (!s || !s.q) { el.textContent = text; return; }
    var lower = text.toLowerCase(), needle = s.q.toLowerCase();
    var at = lower.indexOf(needle);
    if (at < 0) { el.textContent = text; return; }
    el.textContent = "";
    var pos = 0;
    while (at >= 0) {
      if (at > pos) el.appendChild(document.createTextNode(text.slice(pos, at)));
      var mark = document.createElement("mark");
      mark.className = "hit";
      mark.textContent = text.slice(at, at + needle.length);
      el.appendChild(mark);
      pos = at + needle.length;
      at = lower.indexOf(needle, pos);
    }
    if (pos < text.length) el.appendChild(document.createTextNode(text.slice(pos)));
  }

  function lineEl(rec) {
    var div = document.createElement("div");
    div.className = "ln";
    div.setAttribute("data-a", rec.a);
    div.setAttribute("data-o", rec.o);
    div.setAttribute("data-e", rec.e);
    var gutter = document.createElement("span");
    gutter.className = "g";
    gutter.textContent = "#";
    gutter.title = T.linkToLine || "";
    div.appendChild(gutter);
    var text = rec.text;
    var m = TS_RE.exec(text);
    if (m) {
      var ts = document.createElement("span");
      ts.className = "ts";
      ts.textContent = m[2] + "." + m[3];
      ts.title = m[1] + " " + m[2] + "." + m[3] + " UTC";
      div.appendChild(ts);
      text = text.slice(m[0].length);
    }
    text = cleanText(text);
    if (ERR_RE.test(text)) div.classList.add("err");
    else if (WARN_RE.test(text)) div.classList.add("warn");
    var tx = document.createElement("span");
    tx.className = "tx";
    highlight(tx, text);
    div.appendChild(tx);
    return div;
  }

  function sepEl(attemptId) {
    var div = document.createElement("div");
    div.className = "log-sep";
    div.setAttribute("data-sep", attemptId);
    div.setAttribute("role", "separator");
    div.textContent = fmt(T.attemptStarts, { n: attemptNumber(attemptId) || "?" });
    return div;
  }

  /** Whole lines of ``data`` (read from ``start`` in ``attempt``) as records with byte offsets. */
  function records(data, attempt, start) {
    var out = [];
    if (!data) return out;
    var parts = data.split("\n");
    if (parts[parts.length - 1] === "") parts.pop();
    var off = start;
    parts.forEach(function (text) {
      var end = off + bytes(text) + 1;
      out.push({ a: attempt, o: off, e: end, text: text });
      off = end;
    });
    return out;
  }

  function clearNotes() {
    Array.prototype.slice.call(linesEl.querySelectorAll(".log-note[data-transient]")).forEach(function (n) { n.remove(); });
  }

  function note(text, transient) {
    var div = document.createElement("div");
    div.className = "log-note";
    if (transient) div.setAttribute("data-transient", "");
    div.textContent = text;
    return div;
  }

  function renderTop() {
    var old = linesEl.querySelector("[data-top]");
    if (old) old.remove();
    var marker;
    if (!state.top) return;
    var bof = state.top.o === 0 && prevAttempt(state.top.a) === null;
    if (bof) {
      marker = note(T.startOfLog);
    } else {
      marker = document.createElement("div");
      marker.className = "log-more";
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn btn-sm";
      btn.textContent = T.loadEarlier;
      btn.addEventListener("click", loadEarlier);
      marker.appendChild(btn);
    }
    marker.setAttribute("data-top", "");
    linesEl.insertBefore(marker, linesEl.firstChild);
    if (state.top.o === 0 && prevAttempt(state.top.a) !== null && !linesEl.querySelector('[data-sep="' + state.top.a + '"]')) {
      linesEl.insertBefore(sepEl(state.top.a), marker.nextSibling);
    }
  }

  function append(recs) {
    if (!recs.length) return;
    var frag = document.createDocumentFragment();
    recs.forEach(function (r) { frag.appendChild(r.sep ? sepEl(r.sep) : lineEl(r)); });
    var endNote = linesEl.querySelector("[data-end]");
    linesEl.insertBefore(frag, endNote || null);
    state.lines += recs.filter(function (r) { return !r.sep; }).length;
    clearNotes();
    trimTop();
  }

  function prepend(recs) {
    if (!recs.length) return;
    var frag = document.createDocumentFragment();
    recs.forEach(function (r) { frag.appendChild(r.sep ? sepEl(r.sep) : lineEl(r)); });
    var marker = linesEl.querySelector("[data-top]");
    linesEl.insertBefore(frag, marker ? marker.nextSibling : linesEl.firstChild);
    state.lines += recs.filter(function (r) { return !r.sep; }).length;
    clearNotes();
    trimBottom();
  }

  function trimTop() {
    if (state.lines <= MAX_LINES) return;
    var lines = linesEl.querySelectorAll(".ln");
    var drop = state.lines - MAX_LINES;
    var first = lines[drop];
    var node = linesEl.querySelector("[data-top]");
    node = node ? node.nextSibling : linesEl.firstChild;
    while (node && node !== first) { var next = node.nextSibling; node.remove(); node = next; }
    state.lines -= drop;
    state.top = { a: Number(first.getAttribute("data-a")), o: Number(first.getAttribute("data-o")) };
    renderTop();
  }

  function trimBottom() {
    if (state.lines <= MAX_LINES) return;
    var lines = linesEl.querySelectorAll(".ln");
    var keep = lines[MAX_LINES - 1];
    var node = keep.nextSibling;
    while (node && !node.hasAttribute("data-end")) { var next = node.nextSibling; node.remove(); node = next; }
    state.lines = MAX_LINES;
    state.bottom = { a: Number(keep.getAttribute("data-a")), o: Number(keep.getAttribute("data-e")) };
    state.atLiveEnd = false;
    setFollowing(false);
  }

  function showEmptyIfNeeded() {
    if (state.lines || linesEl.querySelector(".log-sep:not([data-top])")) return;
    var text = state.finished ? T.emptyLogFinished : T.emptyLog;
    linesEl.appendChild(note(text, true));
  }

  function showEnded() {
    var old = linesEl.querySelector("[data-end]");
    if (old) old.remove();
    if (!state.ended) return;
    var n = note(fmt(T.jobEnded, { s: statusLabel(state.status) }));
    n.setAttribute("data-end", "");
    linesEl.appendChild(n);
  }

  // ------------------------------------------------------------------------ scrolling

  function nearBottom() { return body.scrollHeight - body.scrollTop - body.clientHeight < 60; }
  function scrollToBottom() {
    state.programmaticScroll = true;
    body.scrollTop = body.scrollHeight;
  }
  function scrollToLine(el) {
    if (!el) return;
    state.programmaticScroll = true;
    body.scrollTop = Math.max(0, el.offsetTop - body.clientHeight / 3);
  }
  function firstVisible() {
    var rect = body.getBoundingClientRect();
    for (var dy = 8; dy < 80; dy += 12) {
      var el = document.elementFromPoint(rect.left + 60, rect.top + dy);
      var hit = el && el.closest && el.closest(".ln, .log-sep");
      if (hit && linesEl.contains(hit)) return hit;
    }
    return linesEl.querySelector(".ln");
  }
  function currentAttempt() {
    var el = firstVisible();
    if (!el) return state.bottom ? state.bottom.a : latestAttempt();
    return Number(el.getAttribute("data-a") || el.getAttribute("data-sep"));
  }

  body.addEventListener("scroll", function () {
    if (state.programmaticScroll) { state.programmaticScroll = false; return; }
    if (state.following && !nearBottom()) setFollowing(false);
    if (body.scrollTop < 150) loadEarlier();
    if (!state.following && nearBottom() && !state.atLiveEnd) loadLater();
    updateStatus();
  });

  // ------------------------------------------------------------------------ loading

  function reset() {
    state.gen += 1;
    stopFollowing();
    linesEl.textContent = "";
    state.top = state.bottom = null;
    state.lines = 0;
    state.atLiveEnd = false;
    state.ended = false;
    var loading = note(T.loading, true);
    linesEl.appendChild(loading);
    return state.gen;
  }

  function failed(err) {
    clearNotes();
    linesEl.appendChild(note((T.requestFailed || "") + " (" + err.message + ")", true));
  }

  function openTail(follow) {
    var gen = reset();
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
      if (follow) startFollowing();
      else checkEnded();
      updateStatus();
    }, failed);
  }

  function openAt(attempt, offset, mark) {
    var gen = reset();
    var before = offset > 0 ? read({ mode: "backward", attempt: attempt, offset: offset, limit: CONTEXT }) : Promise.resolve(null);
    var after = read({ mode: "forward", attempt: attempt, offset: offset, limit: PAGE });
    return Promise.all([before, after]).then(function (pages) {
      if (gen !== state.gen) return;
      var b = pages[0], f = pages[1];
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
      var target = linesEl.querySelector('.ln[data-a="' + attempt + '"][data-o="' + offset + '"]');
      if (!target && offset === 0) target = linesEl.querySelector('[data-sep="' + attempt + '"]') || linesEl.querySelector(".ln");
      if (mark && target && target.classList.contains("ln")) target.classList.add("target");
      scrollToLine(target);
      setFollowing(false);
      updateStatus();
      return target;
    }, failed);
  }

  function loadEarlier() {
    if (!state.top || state.loading) return Promise.resolve();
    var top = state.top;
    var gen = state.gen;
    var prev = prevAttempt(top.a);
    if (top.o === 0 && prev === null) return Promise.resolve();
    state.loading = true;
    var request = top.o > 0
      ? read({ mode: "backward", attempt: top.a, offset: top.o, limit: PAGE })
      : read({ mode: "tail", attempt: prev, limit: PAGE });
    var heightBefore = body.scrollHeight;
    return request.then(function (page) {
      state.loading = false;
      if (gen !== state.gen) return;
      var recs = records(page.data, page.attempt_id, page.start);
      if (top.o === 0) {
        var existing = linesEl.querySelector('[data-sep="' + top.a + '"]');
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
  function loadLater() {
    if (!state.bottom || state.loading) return Promise.resolve(false);
    var bottom = state.bottom;
    var gen = state.gen;
    state.loading = true;
    return read({ mode: "forward", attempt: bottom.a, offset: bottom.o, limit: PAGE }).then(function (page) {
      state.loading = false;
      if (gen !== state.gen) return false;
      applyMeta(page);
      append(records(page.data, bottom.a, page.start));
      state.bottom = { a: bottom.a, o: page.end };
      var more = !page.eof;
      if (page.eof) {
        var next = nextAttempt(bottom.a);
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

  // ------------------------------------------------------------------------ following

  function liveSocket() {
    var live = Rota.live;
    return live && live.isLive() && live.realtime && typeof live.realtime.followLog === "function" ? live.realtime : null;
  }

  function setFollowing(on) {
    state.following = on;
    followBtn.setAttribute("aria-pressed", on ? "true" : "false");
    followBtn.querySelector("[data-label]").textContent = on ? T.following : T.paused;
    jumpBtn.hidden = on;
    if (!on) stopFollowing();
    updateStatus();
  }

  function stopFollowing() {
    if (state.stream) { try { state.stream.close(); } catch (e) { /* already closed */ } state.stream = null; }
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  function checkEnded() {
    if (state.finished && state.atLiveEnd && state.bottom && state.bottom.a === latestAttempt()) {
      if (!state.ended) { state.ended = true; showEnded(); }
      return true;
    }
    return false;
  }

  function startFollowing() {
    stopFollowing();
    state.following = true;
    setFollowing(true);
    var gen = state.gen;
    // Catch up page by page (a few pages at most; further behind, jump to the tail).
    var pages = 0;
    function catchUp() {
      if (gen !== state.gen || !state.following) return;
      if (state.atLiveEnd) return followLive();
      if (pages++ > 4) return openTail(true);
      loadLater().then(catchUp);
    }
    catchUp();
  }

  function followLive() {
    if (checkEnded()) { schedulePoll(5000); return; }
    var rt = liveSocket();
    if (!rt) { schedulePoll(1000); return; }
    var gen = state.gen;
    var cursor = state.bottom.a + ":" + state.bottom.o;
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

  function appendStream(data, cursor) {
    var a = state.bottom.a, o = state.bottom.o;
    var recs = [];
    var parts = data.split("\n");
    if (parts[parts.length - 1] === "") parts.pop();
    parts.forEach(function (text) {
      var sep = SEP_RE.exec(text);
      if (sep) {
        a = Number(sep[2]);
        o = 0;
        if (state.attempts.indexOf(a) < 0) state.attempts.push(a);
        recs.push({ sep: a });
        return;
      }
      if (text === "" && recs.length === 0 && parts.length > 1 && SEP_RE.test(parts[1])) return;
      var end = o + bytes(text) + 1;
      recs.push({ a: a, o: o, e: end, text: text });
      o = end;
    });
    append(recs);
    var m = /^(\d+):(\d+)$/.exec(cursor || "");
    state.bottom = m ? { a: Number(m[1]), o: Number(m[2]) } : { a: a, o: o };
    if (state.ended) { state.ended = false; showEnded(); }
    if (state.following) scrollToBottom();
    updateStatus();
  }

  function schedulePoll(ms) {
    clearTimeout(state.pollTimer);
    var gen = state.gen;
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

  document.addEventListener("rota:live-state", function (e) {
    if (!state.following) return;
    if (e.detail.state === "live" && !state.stream && !state.ended) { clearTimeout(state.pollTimer); followLive(); }
    if (e.detail.state !== "live" && state.stream) { stopFollowing(); schedulePoll(1000); }
  });

  // ------------------------------------------------------------------------ status line

  function updateStatus() {
    var parts = [];
    var a = currentAttempt();
    if (a) parts.push(fmt(T.attempt, { n: attemptNumber(a) }) + " / " + state.attempts.length);
    parts.push(fmt(T.rank, { n: state.rank }));
    parts.push(fmt(T.lines, { n: state.lines.toLocaleString(LANG) }));
    if (state.ended) parts.push(fmt(T.jobEnded, { s: statusLabel(state.status) }));
    else if (state.following) parts.push(state.stream ? T.followLive : T.followPolling);
    else parts.push(T.paused);
    positionEl.textContent = parts.join(" · ");
    var cur = state.search;
    if (cur && cur.matches) {
      var total = cur.counts ? cur.counts[String(state.rank)] || 0 : cur.matches.length;
      countEl.textContent = total ? (cur.index >= 0 ? fmt(T.matchOf, { i: cur.index + 1, n: total }) : fmt(T.matches, { n: total })) : T.noMatches;
    } else {
      countEl.textContent = "";
    }
  }

  // ------------------------------------------------------------------------ search

  function rehighlight() {
    Array.prototype.slice.call(linesEl.querySelectorAll(".ln .tx")).forEach(function (tx) { highlight(tx, tx.textContent); });
  }

  function runSearch(text) {
    text = text.trim();
    if (!text) { clearSearch(); return Promise.resolve(); }
    var attempt = currentAttempt() || latestAttempt();
    state.search = { q: text, attempt: attempt, matches: null, index: -1 };
    countEl.textContent = T.searching;
    rehighlight();
    var url = new URL(cfg.searchUrl, location.origin);
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
        if (Rota.toast) Rota.toast("error", fmt(T.searchFailed, { e: err.message }));
      });
  }

  function renderSearchbar() {
    var s = state.search;
    searchbar.textContent = "";
    matchesEl.textContent = "";
    if (!s || !s.matches) { searchbar.hidden = true; matchesEl.hidden = true; return; }
    searchbar.hidden = false;
    var label = document.createElement("strong");
    label.textContent = fmt(T.attempt, { n: attemptNumber(s.attempt) }) + " · " + T.ranksMatching;
    searchbar.appendChild(label);
    var ranks = Object.keys(s.counts || {}).map(Number).sort(function (x, y) { return x - y; });
    ranks.forEach(function (r) {
      var n = s.counts[String(r)];
      var b = document.createElement("button");
      b.type = "button";
      b.className = "btn btn-xs rank-hit";
      b.textContent = fmt(T.rank, { n: r }) + " (" + n + ")";
      b.disabled = !n;
      if (r === state.rank) b.setAttribute("aria-current", "true");
      b.addEventListener("click", function () { switchRank(r, true); });
      searchbar.appendChild(b);
    });
    if (s.truncated) { var t = document.createElement("span"); t.className = "subtle"; t.textContent = T.truncatedResults; searchbar.appendChild(t); }
    if (s.matches.length) {
      matchesEl.hidden = false;
      s.matches.forEach(function (m, i) {
        var b = document.createElement("button");
        b.type = "button";
        var lno = document.createElement("span");
        lno.className = "lno";
        lno.textContent = "L" + m.line;
        var tx = document.createElement("span");
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

  function gotoHit(i) {
    var s = state.search;
    if (!s || !s.matches || !s.matches.length) return;
    s.index = (i + s.matches.length) % s.matches.length;
    var m = s.matches[s.index];
    var el = linesEl.querySelector('.ln[data-a="' + s.attempt + '"][data-o="' + m.offset + '"]');
    var shown = el ? Promise.resolve(el) : openAt(s.attempt, m.offset, false);
    shown.then(function (target) {
      Array.prototype.slice.call(linesEl.querySelectorAll("mark.current, .ln.target")).forEach(function (x) { x.classList.remove("current", "target"); });
      if (target && target.classList) {
        target.classList.add("target");
        var mark = target.querySelector("mark.hit");
        if (mark) mark.classList.add("current");
        setFollowing(false);
        scrollToLine(target);
      }
      updateStatus();
    });
  }

  function clearSearch() {
    state.search = null;
    searchbar.hidden = true;
    matchesEl.hidden = true;
    rehighlight();
    updateStatus();
  }

  searchForm.addEventListener("submit", function (e) { e.preventDefault(); });
  searchInput.addEventListener("keydown", function (e) {
    if (e.key === "Enter") {
      e.preventDefault();
      var s = state.search;
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

  // ------------------------------------------------------------------------ ranks, links, toolbar

  function setUrl(params) {
    var url = new URL(location.href);
    ["rank", "attempt", "at"].forEach(function (k) { url.searchParams.delete(k); });
    Object.keys(params).forEach(function (k) { url.searchParams.set(k, params[k]); });
    history.replaceState(null, "", url.toString());
    return url.toString();
  }

  function switchRank(r, keepSearch) {
    state.rank = r;
    rankSelect.value = String(r);
    setUrl({ rank: r });
    Array.prototype.slice.call(root.querySelectorAll("[data-download-attempt]")).forEach(function (a) {
      var url = new URL(a.href, location.origin);
      url.searchParams.set("rank", r);
      a.href = url.toString();
    });
    var s = state.search;
    if (keepSearch && s && s.all) {
      s.matches = s.all.filter(function (m) { return m.rank === r; });
      s.index = -1;
      renderSearchbar();
      if (s.matches.length) { reset(); return gotoHit(0); }
    }
    return openTail(true);
  }
  rankSelect.addEventListener("change", function () { switchRank(Number(rankSelect.value), true); });

  linesEl.addEventListener("click", function (e) {
    var g = e.target.closest(".g");
    if (!g) return;
    var line = g.closest(".ln");
    Array.prototype.slice.call(linesEl.querySelectorAll(".ln.target")).forEach(function (x) { x.classList.remove("target"); });
    line.classList.add("target");
    var url = setUrl({ rank: state.rank, attempt: line.getAttribute("data-a"), at: line.getAttribute("data-o") });
    setFollowing(false);
    if (Rota.copy) Rota.copy(url, T.linkCopied);
  });

  followBtn.addEventListener("click", function () {
    if (state.following) setFollowing(false);
    else startFollowing();
  });
  jumpBtn.addEventListener("click", function () { openTail(true); });
  q("[data-log-bottom]").addEventListener("click", function () { openTail(true); });
  q("[data-log-top]").addEventListener("click", function () {
    var first = state.attempts[0];
    if (state.top && state.top.a === first && state.top.o === 0) { setFollowing(false); state.programmaticScroll = true; body.scrollTop = 0; return; }
    openAt(first, 0, false);
  });

  function jumpAttempt(direction) {
    var cur = currentAttempt();
    if (!cur) return;
    var target;
    if (direction < 0) {
      var sep = linesEl.querySelector('[data-sep="' + cur + '"]');
      var startLoaded = (state.top && state.top.a === cur && state.top.o === 0) || sep;
      var atStart = sep ? sep.offsetTop >= body.scrollTop - 4 : state.top && state.top.a === cur && state.top.o === 0 && body.scrollTop < 40;
      target = startLoaded && atStart ? prevAttempt(cur) : cur;
      if (target === null) return;
    } else {
      target = nextAttempt(cur);
      if (target === null) return;
    }
    var el = linesEl.querySelector('[data-sep="' + target + '"]');
    if (el) { setFollowing(false); scrollToLine(el); updateStatus(); return; }
    if (target === state.attempts[0] && state.top && state.top.a === target && state.top.o === 0) {
      setFollowing(false); state.programmaticScroll = true; body.scrollTop = 0; return;
    }
    openAt(target, 0, false);
  }
  q("[data-log-prev-attempt]").addEventListener("click", function () { jumpAttempt(-1); });
  q("[data-log-next-attempt]").addEventListener("click", function () { jumpAttempt(1); });

  function toggle(button, cls, key, invert) {
    function apply(on) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      body.classList.toggle(cls, invert ? !on : on);
    }
    var saved = null;
    try { saved = localStorage.getItem(key); } catch (e) { saved = null; }
    apply(saved === null ? button.getAttribute("aria-pressed") === "true" : saved === "1");
    button.addEventListener("click", function () {
      var on = button.getAttribute("aria-pressed") !== "true";
      apply(on);
      try { localStorage.setItem(key, on ? "1" : "0"); } catch (e) { /* private mode */ }
    });
  }
  toggle(q("[data-log-wrap]"), "wrap", "rota:log-wrap", false);
  toggle(q("[data-log-ts]"), "no-ts", "rota:log-ts", true);

  document.addEventListener("keydown", function (e) {
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "f" || e.key === "F") { e.preventDefault(); followBtn.click(); }
  });

  // A resumed job gets a new attempt: follow it if we were at the end.
  document.addEventListener("htmx:afterSwap", function (e) {
    var live = document.getElementById("chain-live");
    if (!live || e.target !== live && !live.contains(e.target)) return;
    var status = live.getAttribute("data-chain-status");
    if (status && state.ended && ["waiting", "held", "suspended", "canceled", "stopped", "failed", "succeeded"].indexOf(status) < 0) {
      state.ended = false;
      state.finished = false;
      showEnded();
      startFollowing();
    }
  });

  // ------------------------------------------------------------------------ start

  var params = new URLSearchParams(location.search);
  var at = params.get("at"), attemptParam = Number(params.get("attempt"));
  if (at !== null && state.attempts.indexOf(attemptParam) >= 0) openAt(attemptParam, Number(at) || 0, true);
  else openTail(true);
})();
