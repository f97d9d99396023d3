/* Rota portal behaviour: small, dependency-free, progressive (every page works without it).
 *
 * - Live regions: an element with data-live-url is re-fetched (HTMX, outerHTML) when a realtime
 *   event it lists in data-live-events arrives (for the chains in data-live-chains, if given), when
 *   the websocket opens (the first time too: events before it reached nobody), and — while the websocket is not live or realtime.js is absent — every
 *   data-live-poll seconds while the tab is visible. A region the user is typing in waits.
 * - Toasts, copy buttons, confirmation dialogs, menus, theme and language switches (keeping the
 *   reader's place), relative times and running-time tickers, list selection and batch actions,
 *   the submit form's helpers, keyboard shortcuts.
 */
(function () {
  "use strict";

  var Rota = (window.Rota = window.Rota || {});
  var stringsEl = document.getElementById("rota-i18n");
  var T = stringsEl ? JSON.parse(stringsEl.textContent) : {};
  var LANG = document.documentElement.lang || "en";

  /** "%(n)s jobs", {n: 3} → "3 jobs"; supports %(x)02d zero-padding. */
  function fmt(text, values) {
    return String(text || "").replace(/%\((\w+)\)(0?)(\d*)[sd]/g, function (_m, key, zero, width) {
      var v = values && key in values ? String(values[key]) : "";
      if (zero && width) while (v.length < Number(width)) v = "0" + v;
      return v;
    });
  }
  Rota.t = T;
  Rota.fmt = fmt;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var input = $("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  Rota.csrfToken = csrfToken;

  // ------------------------------------------------------------------------------ toasts

  var ICONS = { success: "circle-check", error: "circle-alert", warning: "triangle-alert", info: "info" };
  var SPRITE = document.body.getAttribute("data-sprite") || "/static/vendor/lucide/sprite.svg";
  function iconSvg(name, css) {
    return '<svg class="icon ' + (css || "") + '" aria-hidden="true"><use href="' + SPRITE + "#i-" + name + '"></use></svg>';
  }
  Rota.icon = iconSvg;

  function armToast(el) {
    if (el._armed) return;
    el._armed = true;
    var ms = el.classList.contains("toast-error") ? 12000 : 6000;
    el._timer = setTimeout(function () { el.remove(); }, ms);
    el.addEventListener("mouseenter", function () { clearTimeout(el._timer); });
    el.addEventListener("mouseleave", function () { el._timer = setTimeout(function () { el.remove(); }, 3000); });
  }
  function toast(kind, text) {
    var box = $("#toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + kind;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    el.setAttribute("data-toast", "");
    el.innerHTML = iconSvg(ICONS[kind] || "info") + "<div></div>" +
      '<button class="btn btn-ghost btn-xs btn-icon close" type="button" data-dismiss>' + iconSvg("x") + "</button>";
    el.children[1].textContent = text;
    el.lastChild.setAttribute("aria-label", T.cancel || "Dismiss");
    box.appendChild(el);
    armToast(el);
  }
  Rota.toast = toast;

  // ------------------------------------------------------------------------------ copy

  function copyText(text) {
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      return ok ? Promise.resolve() : Promise.reject(new Error("copy"));
    }
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(fallback);
    }
    return fallback();
  }
  Rota.copy = function (text, message) {
    return copyText(text).then(
      function () { toast("success", message || T.copied); },
      function () { toast("warning", T.copyFailed); }
    );
  };

  // ------------------------------------------------------------------------------ confirm dialog

  function confirmDialog(question, danger) {
    var dialog = $("#confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(question));
    $("#confirm-text", dialog).textContent = question;
    $("#confirm-ok", dialog).classList.toggle("btn-danger-solid", !!danger);
    return new Promise(function (resolve) {
      function done() {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "ok");
        // Live regions held back while the question was open catch up now.
        setTimeout(refreshDeferred, 0);
      }
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      dialog.showModal();
      $("#confirm-ok", dialog).focus();
    });
  }
  Rota.confirm = confirmDialog;

  // Plain (non-HTMX) forms: a submit button with data-confirm asks first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var submitter = e.submitter;
    if (e.defaultPrevented || form.hasAttribute("hx-post") || form.hasAttribute("hx-get")) return;
    var question = submitter && submitter.getAttribute("data-confirm");
    if (!question || form._confirmed) return;
    e.preventDefault();
    confirmDialog(question, submitter.classList.contains("btn-danger")).then(function (ok) {
      if (!ok) return;
      // A live refresh may have replaced the form meanwhile: a detached form does not submit,
      // and an action the user confirmed is never dropped.
      if (!form.isConnected) { form.hidden = true; document.body.appendChild(form); }
      form._confirmed = true;
      if (form.requestSubmit) form.requestSubmit(submitter); else form.submit();
      form._confirmed = false;
    });
  });

  // ------------------------------------------------------------------------------ clicks

  function closeMenus(except) {
    $$("details.menu[open]").forEach(function (d) { if (d !== except && !d.contains(except)) d.open = false; });
  }

  document.addEventListener("click", function (e) {
    var t = e.target;
    var dismiss = t.closest("[data-dismiss]");
    if (dismiss) { var el = dismiss.closest("[data-toast]"); if (el) el.remove(); return; }

    var copy = t.closest("[data-copy]");
    if (copy) { Rota.copy(copy.getAttribute("data-copy")); closeMenus(); return; }
    var copyTarget = t.closest("[data-copy-target]");
    if (copyTarget) {
      var source = $(copyTarget.getAttribute("data-copy-target"));
      if (source) Rota.copy(source.textContent.trim());
      return;
    }
    if (t.closest("[data-copy-url]")) { Rota.copy(location.href); closeMenus(); return; }

    var hide = t.closest("[data-dismiss-notice]");
    if (hide) {
      var notice = hide.closest("[data-notice]");
      var ids = dismissedNotices();
      ids.push(notice.getAttribute("data-notice"));
      try { localStorage.setItem("rota:notices", JSON.stringify(ids.slice(-100))); } catch (err) { /* private mode */ }
      notice.remove();
      return;
    }

    var inMenu = t.closest("details.menu");
    closeMenus(inMenu);
    if (inMenu && t.closest(".menu-panel a")) inMenu.open = false;
  });

  document.addEventListener("keydown", function (e) {
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
    if (e.key === "Escape") {
      var open = $$("details.menu[open]");
      if (open.length) { open.forEach(function (d) { d.open = false; var s = d.querySelector("summary"); if (s) s.focus(); }); }
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") {
      var search = $$("[data-shortcut-search]").filter(function (el) { return el.offsetParent !== null; })[0];
      if (search) { e.preventDefault(); search.focus(); search.select(); }
    }
  });

  // ------------------------------------------------------------------------------ notices

  function dismissedNotices() {
    try { return JSON.parse(localStorage.getItem("rota:notices") || "[]"); } catch (e) { return []; }
  }
  function hideDismissedNotices() {
    var ids = dismissedNotices();
    $$("[data-notice]").forEach(function (n) { if (ids.indexOf(n.getAttribute("data-notice")) >= 0) n.remove(); });
  }

  // ------------------------------------------------------------------------------ theme

  function markThemeChoice() {
    var choice = window.RotaTheme ? window.RotaTheme.choice() : "system";
    $$("[data-theme-form] button[name=theme]").forEach(function (b) {
      var on = b.value === choice;
      b.classList.toggle("current", on);
      b.setAttribute("aria-current", on ? "true" : "false");
    });
  }
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("[data-theme-form]");
    if (!form || !e.submitter) return;
    e.preventDefault();
    var value = e.submitter.value;
    if (window.RotaTheme) window.RotaTheme.apply(value);
    document.cookie = "rota_theme=" + value + "; path=/; max-age=31536000; samesite=lax";
    markThemeChoice();
    var menu = form.closest("details");
    if (menu) menu.open = false;
    var body = new URLSearchParams();
    body.set("theme", value);
    fetch(form.action, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
      credentials: "same-origin",
    }).catch(function () { /* the cookie already keeps it on this device */ });
  });

  // ------------------------------------------------------------------------------ language: keep the place

  document.addEventListener("submit", function (e) {
    var form = e.target.closest("[data-keep-place]");
    if (!form) return;
    var next = form.querySelector("input[name=next]");
    var here = location.pathname + location.search + location.hash;
    if (next) next.value = here;
    try {
      sessionStorage.setItem("rota:place", JSON.stringify({ path: location.pathname + location.search, y: window.scrollY }));
    } catch (err) { /* private mode */ }
  }, true);

  function restorePlace() {
    var raw;
    try { raw = sessionStorage.getItem("rota:place"); sessionStorage.removeItem("rota:place"); } catch (e) { return; }
    if (!raw) return;
    var place = JSON.parse(raw);
    if (place.path === location.pathname + location.search && place.y) {
      requestAnimationFrame(function () { window.scrollTo(0, place.y); });
    }
  }

  // ------------------------------------------------------------------------------ times

  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(LANG, { numeric: "auto" }) : null;
  function relative(date) {
    var secs = (date.getTime() - Date.now()) / 1000;
    var abs = Math.abs(secs);
    if (!rtf) return date.toLocaleString(LANG);
    if (abs < 45) return T.justNow || rtf.format(0, "second");
    if (abs < 2700) return rtf.format(Math.round(secs / 60), "minute");
    if (abs < 64800) return rtf.format(Math.round(secs / 3600), "hour");
    if (abs < 30 * 86400) return rtf.format(Math.round(secs / 86400), "day");
    return date.toLocaleDateString(LANG, { year: "numeric", month: "short", day: "numeric" });
  }
  function duration(total) {
    total = Math.max(0, Math.floor(total));
    var d = Math.floor(total / 86400), h = Math.floor((total % 86400) / 3600);
    var m = Math.floor((total % 3600) / 60), s = total % 60;
    if (d) return fmt(T.durDH, { d: d, h: h });
    if (h) return fmt(T.durHM, { h: h, m: m });
    if (m) return fmt(T.durMS, { m: m, s: s });
    return fmt(T.durS, { s: s });
  }
  Rota.duration = duration;

  function updateTimes(root) {
    $$("time[data-relative]", root).forEach(function (t) {
      var date = new Date(t.getAttribute("datetime"));
      if (isNaN(date)) return;
      if (!t.title) t.title = date.toLocaleString(LANG);
      t.textContent = relative(date);
    });
  }
  function updateTickers() {
    var now = Date.now();
    $$("[data-since]").forEach(function (el) {
      if (el._t0 === undefined) {
        el._t0 = now;
        var base = el.getAttribute("data-base");
        el._base = base !== null && base !== "" ? Number(base) : (now - new Date(el.getAttribute("data-since")).getTime()) / 1000;
      }
      el.textContent = duration(el._base + (now - el._t0) / 1000);
    });
  }
  setInterval(updateTickers, 1000);
  setInterval(function () { updateTimes(document); }, 30000);

  // ------------------------------------------------------------------------------ live regions

  var EVENT_TYPES = ["chain.status", "chain.explanation", "attempt.started", "attempt.finished", "attempt.suspended", "quota.usage"];
  var Live = (Rota.live = {
    state: "connecting",
    realtime: null,
    lastPoll: new WeakMap(),
    isLive: function () { return this.state === "live"; },
  });

  var LIVE_LABELS = { live: T.live, connecting: T.connecting, offline: T.offline };
  function setLiveState(state) {
    if (state === Live.state) return;
    Live.state = state;
    var el = $("#rt-status");
    if (el && !Live.realtime) {
      // realtime.js keeps the indicator itself; without it, say that the page polls.
      el.setAttribute("data-state", state);
      el.textContent = el.getAttribute("data-label-" + state) || LIVE_LABELS[state];
    }
    document.dispatchEvent(new CustomEvent("rota:live-state", { detail: { state: state } }));
  }

  function busy(el) {
    // A confirmation is being answered: keep what it acts on in place until it is closed.
    var dialog = document.getElementById("confirm-dialog");
    if (dialog && dialog.open) return true;
    var active = document.activeElement;
    if (active && el.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return true;
    if (el.querySelector("details.menu[open]")) return true;
    if (el.querySelector("[aria-busy=true]:not([data-chart-grid])")) return true;
    return false;
  }

  /** The region as it is in the page now: a refresh replaces the element (outerHTML). */
  function current(el) {
    if (!el) return null;
    if (document.body.contains(el)) return el;
    return el.id ? document.getElementById(el.id) : null;
  }

  // One refresh per region at a time; a change that arrives meanwhile asks for one more after it
  // (else the answer in flight, rendered before the change, would be the last word).
  var inFlight = Object.create(null);

  function refresh(el) {
    el = current(el);
    if (!el || !window.htmx) return;
    if (busy(el)) { el._deferred = true; return; }
    el._deferred = false;
    clearTimeout(el._debounce);
    var key = el.id || "";
    if (key && inFlight[key]) { inFlight[key] = "again"; return; }
    if (key) inFlight[key] = true;
    Live.lastPoll.set(el, Date.now());
    var url = el.getAttribute("data-live-url") || location.pathname + location.search;
    function done() {
      var again = key && inFlight[key] === "again";
      if (key) delete inFlight[key];
      if (again) refreshSoon(current(el));
    }
    // The region is the request's source too: htmx keeps one request slot per source element,
    // and with the body as source the regions' refreshes would replace each other in its queue.
    var sent = window.htmx.ajax("GET", url, {
      source: el, target: el, swap: "outerHTML", headers: { "X-Rota-Background": "1" },
    });
    if (sent && typeof sent.then === "function") sent.then(done, done); else done();
  }
  function refreshSoon(el) {
    if (!el) return;
    clearTimeout(el._debounce);
    el._debounce = setTimeout(function () { refresh(el); }, 250);
  }
  Rota.refresh = refresh;

  var pendingRows = new Set();
  function onRealtimeEvent(type, event) {
    var chainId = event && event.chain_id != null ? String(event.chain_id) : null;
    $$("[data-live-url]").forEach(function (el) {
      var events = (el.getAttribute("data-live-events") || "").split(/\s+/);
      if (events.indexOf(type) < 0) return;
      var chains = el.getAttribute("data-live-chains");
      if (chains && chainId && chains.split(/\s+/).indexOf(chainId) < 0) return;
      if (el.hasAttribute("data-live-new-chains") && chainId && document.getElementById("row-" + chainId)) return;
      if (el.tagName === "TR") pendingRows.add(el);
      refreshSoon(el);
    });
    // Many rows changing at once (a scheduling pass): one request for the table instead of one per row.
    var results = $("#chain-results");
    if (results && pendingRows.size > 5) {
      pendingRows.forEach(function (row) { clearTimeout(row._debounce); });
      pendingRows.clear();
      refreshSoon(results);
    }
    clearTimeout(onRealtimeEvent._reset);
    onRealtimeEvent._reset = setTimeout(function () { pendingRows.clear(); }, 300);
  }

  /** Re-fetch every live region once (an outer region brings its inner ones with it). */
  function refreshAll() {
    $$("[data-live-url]").forEach(function (el) {
      if (!el.parentElement || !el.parentElement.closest("[data-live-url]")) refreshSoon(el);
    });
  }

  /** Refresh the regions that were held back (a focused input, an open menu or question). */
  function refreshDeferred() {
    $$("[data-live-url]").forEach(function (el) { if (el._deferred && !busy(el)) refresh(el); });
  }
  // Refresh what a focused input held back once the user leaves it.
  document.addEventListener("focusout", function () { setTimeout(refreshDeferred, 50); });
  document.addEventListener("toggle", function (e) {
    if (e.target.matches && e.target.matches("details.menu") && !e.target.open) {
      var region = e.target.closest("[data-live-url]");
      if (region && region._deferred) setTimeout(function () { refresh(region); }, 50);
    }
  }, true);

  function pollTick() {
    if (Live.isLive() || document.hidden) return;
    var now = Date.now();
    $$("[data-live-url]").forEach(function (el) {
      var every = Number(el.getAttribute("data-live-poll") || 0);
      if (!every) return;
      var last = Live.lastPoll.get(el);
      if (last === undefined) { Live.lastPoll.set(el, now); return; }
      if (now - last >= every * 1000) refresh(el);
    });
  }

  function subscribePageChains() {
    var rt = Live.realtime;
    if (!rt || !rt.subscribeChain) return;
    // Counted subscriptions: once per page (realtime.js re-subscribes after a reconnect itself).
    $$("[data-chain-page]").forEach(function (el) { rt.subscribeChain(Number(el.getAttribute("data-chain-page"))); });
  }

  function initLive() {
    var rt = window.Rota && window.Rota.realtime;
    if (document.body.getAttribute("data-authenticated") !== "1") return;
    Live.realtime = rt && typeof rt.on === "function" ? rt : null;
    if (!Live.realtime) {
      Live.state = "";
      setLiveState("offline");
    } else {
      // Every open, the first too: what changed between rendering the page and the socket
      // opening (a job that started meanwhile) sent its event to nobody.
      rt.on("open", function () { setLiveState("live"); refreshAll(); });
      rt.on("close", function () { setLiveState(rt.state ? rt.state() : "offline"); });
      // The server ended the socket because the sign-in ended: say so (pages keep polling,
      // and the next one sends the user to the sign-in page).
      rt.on("error", function (ev) { if (ev.code === "unauthenticated") toast("error", ev.message); });
      EVENT_TYPES.forEach(function (type) { rt.on(type, function (ev) { onRealtimeEvent(type, ev); }); });
      subscribePageChains();
      try { rt.connect(); } catch (e) { setLiveState("offline"); }
      if (rt.state && rt.state() === "live") setLiveState("live");
    }
    setInterval(pollTick, 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden && !Live.isLive()) refreshAll(); });
  }

  // ------------------------------------------------------------------------------ HTMX glue

  function isBackground(detail) {
    var headers = detail && detail.requestConfig && detail.requestConfig.headers;
    return !!(headers && headers["X-Rota-Background"]);
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (!isBackground(e.detail)) document.body.classList.add("is-loading");
  });
  document.addEventListener("htmx:afterRequest", function () { document.body.classList.remove("is-loading"); });
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (xhr && xhr.responseURL && /\/login\/(\?|$)/.test(new URL(xhr.responseURL).pathname + "?")) {
      e.detail.shouldSwap = false;
      toast("warning", T.sessionExpired);
      setTimeout(function () { location.href = "/login/?next=" + encodeURIComponent(location.pathname + location.search); }, 1200);
    }
  });
  document.addEventListener("htmx:responseError", function (e) {
    if (isBackground(e.detail)) return;
    var status = e.detail.xhr ? e.detail.xhr.status : 0;
    if (status === 404) toast("error", T.notFound || T.requestFailed);
    else toast("error", T.requestFailed);
  });
  document.addEventListener("htmx:sendError", function (e) {
    if (!isBackground(e.detail)) toast("error", T.requestFailed);
  });
  // Keep the list's address short: drop empty filters and defaults before HTMX builds the URL.
  var DEFAULTS = { scope: "mine", per_page: "25" };
  document.addEventListener("htmx:configRequest", function (e) {
    if (!e.detail.elt || e.detail.elt.id !== "filters") return;
    var data = e.detail.formData;
    if (!data || typeof data.keys !== "function") return;
    Array.from(new Set(Array.from(data.keys()))).forEach(function (key) {
      var values = data.getAll(key);
      if (values.every(function (v) { return v === "" || DEFAULTS[key] === v; })) data.delete(key);
    });
  });
  document.addEventListener("htmx:confirm", function (e) {
    var trigger = e.detail.triggeringEvent;
    var submitter = trigger && trigger.submitter;
    var question = e.detail.question || (submitter && submitter.getAttribute("data-confirm"));
    if (!question) return;
    e.preventDefault();
    var danger = submitter && submitter.classList.contains("btn-danger");
    var detail = e.detail;
    confirmDialog(question, danger).then(function (ok) {
      if (!ok) return;
      if (document.body.contains(detail.elt)) detail.issueRequest(true);
      else resendConfirmed(detail);
    });
  });

  /** Send a confirmed request whose element a live refresh replaced while the question was open
   * (htmx silently drops a request from a detached element): the same method, address and form
   * values, into the target as it is in the page now. */
  function resendConfirmed(detail) {
    var elt = detail.elt;
    var form = elt.tagName === "FORM" ? elt : elt.form || elt.closest("form");
    var values = {};
    if (form) new FormData(form).forEach(function (value, key) { values[key] = value; });
    var swapper = elt.closest("[hx-swap]");
    var target = current(detail.target);
    if (!target) {
      // Nowhere to show the answer: submit as a plain form (every action form also works without htmx).
      if (form) { form.hidden = true; document.body.appendChild(form); form.submit(); }
      return;
    }
    window.htmx.ajax(String(detail.verb).toUpperCase(), detail.path, {
      target: target, swap: swapper ? swapper.getAttribute("hx-swap") : "innerHTML", values: values,
    });
  }
  document.body.addEventListener("rota:list-changed", function () {
    Selection.clear();
    var results = $("#chain-results");
    if (results) refresh(results);
  });

  // ------------------------------------------------------------------------------ list selection

  var Selection = {
    ids: new Set(),
    sync: function () {
      var self = this;
      $$("[data-select-row]").forEach(function (box) {
        box.checked = self.ids.has(box.value);
        var row = box.closest("tr");
        if (row) row.classList.toggle("selected", box.checked);
      });
      var all = $("[data-select-all]");
      var boxes = $$("[data-select-row]");
      if (all) {
        var on = boxes.filter(function (b) { return b.checked; }).length;
        all.checked = boxes.length > 0 && on === boxes.length;
        all.indeterminate = on > 0 && on < boxes.length;
      }
      var bar = $("[data-batch-bar]");
      if (bar) {
        bar.hidden = this.ids.size === 0;
        $("[data-batch-count]", bar).textContent = fmt(T.selected, { n: this.ids.size });
      }
      // Keep selected ids that are not on this page (a refresh may have moved them) in the form.
      var form = $("[data-batch-form]");
      if (form) {
        $$("input[data-kept-id]", form).forEach(function (i) { i.remove(); });
        var visible = new Set(boxes.map(function (b) { return b.value; }));
        this.ids.forEach(function (id) {
          if (visible.has(id)) return;
          var hidden = document.createElement("input");
          hidden.type = "hidden"; hidden.name = "ids"; hidden.value = id; hidden.setAttribute("data-kept-id", "");
          form.appendChild(hidden);
        });
      }
    },
    clear: function () { this.ids.clear(); this.sync(); },
  };
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches("[data-select-row]")) {
      if (t.checked) Selection.ids.add(t.value); else Selection.ids.delete(t.value);
      Selection.sync();
    } else if (t.matches("[data-select-all]")) {
      $$("[data-select-row]").forEach(function (b) { if (t.checked) Selection.ids.add(b.value); else Selection.ids.delete(b.value); });
      Selection.sync();
    } else if (t.matches("[data-per-page]")) {
      var url = new URL(location.href);
      url.searchParams.set("per_page", t.value);
      url.searchParams.delete("page");
      location.href = url.toString();
    } else if (t.matches("select[name=expires]")) {
      var box = $("[data-expiry-date]");
      if (box) box.hidden = t.value !== "date";
    }
  });
  document.addEventListener("click", function (e) {
    if (e.target.closest("[data-batch-clear]")) Selection.clear();
    var more = e.target.closest("[data-more-filters]");
    if (more) {
      var form = more.closest(".filters");
      var open = form.classList.toggle("show-all");
      more.setAttribute("aria-expanded", open ? "true" : "false");
    }
  });

  // ------------------------------------------------------------------------------ filters

  document.addEventListener("input", function (e) {
    var input = e.target.closest("[data-filter]");
    if (!input) return;
    var q = input.value.trim().toLowerCase();
    $$(input.getAttribute("data-filter")).forEach(function (el) {
      el.hidden = q !== "" && (el.getAttribute("data-filter-text") || el.textContent).toLowerCase().indexOf(q) < 0;
    });
  });

  // ------------------------------------------------------------------------------ submit form

  function initSubmitForm() {
    var form = $("[data-submit-form]");
    if (!form) return;
    var hintsEl = $("#quota-hints");
    var hints = hintsEl ? JSON.parse(hintsEl.textContent) : { groups: {}, levels: {} };
    var kind = form.elements.kind, entry = form.elements.entrypoint;
    var kindTouched = form.getAttribute("data-resubmit") === "1";
    if (kind) kind.addEventListener("change", function () { kindTouched = true; });
    if (entry && kind) entry.addEventListener("input", function () {
      if (kindTouched) return;
      var v = entry.value.trim().toLowerCase();
      kind.value = /\.py$/.test(v) ? "python" : /\.(sh|bash)$/.test(v) ? "bash" : v ? "executable" : "python";
    });
    var hint = $("[data-quota-hint]", form);
    function updateHint() {
      if (!hint) return;
      var group = form.elements.group ? form.elements.group.value : "";
      var level = form.elements.priority ? form.elements.priority.value : "-1";
      var nodes = Number(form.elements.nodes ? form.elements.nodes.value : 1) || 1;
      var quota = (hints.groups || {})[group] || {};
      var levels = Object.keys(quota).map(Number).filter(function (l) { return quota[l] > 0; }).sort(function (a, b) { return b - a; });
      var biggest = levels.reduce(function (m, l) { return Math.max(m, quota[l]); }, 0);
      var name = function (l) { return (hints.levels || {})[String(l)] || String(l); };
      var text = "", warn = false;
      if (!group) text = "";
      else if (nodes > biggest) { text = fmt(T.quotaTooBig, { g: group, n: biggest }); warn = true; }
      else if (level === "-1") text = levels.length ? fmt(T.quotaAuto, { p: name(levels[0]), g: group, n: quota[levels[0]] }) : "";
      else if (!quota[level]) { text = fmt(T.quotaNone, { p: name(level), g: group }); warn = true; }
      else text = fmt(T.quotaAt, { n: quota[level], p: name(level), g: group });
      hint.textContent = text;
      hint.classList.toggle("error-text", warn);
    }
    ["group", "priority", "nodes"].forEach(function (n) {
      if (form.elements[n]) { form.elements[n].addEventListener("change", updateHint); form.elements[n].addEventListener("input", updateHint); }
    });
    updateHint();
    var firstError = $("[aria-invalid=true]", form);
    if (firstError) firstError.focus();
  }

  // ------------------------------------------------------------------------------ boot

  function onContent(root) {
    updateTimes(root);
    hideDismissedNotices();
    Selection.sync();
    $$("[data-toast]", root).forEach(armToast);
  }

  function boot() {
    $$("[data-toast]").forEach(armToast);
    var box = $("#toasts");
    if (box && window.MutationObserver) {
      // Toasts arrive out of band with HTMX responses too: arm whatever is added.
      new MutationObserver(function () { $$("[data-toast]", box).forEach(armToast); }).observe(box, { childList: true });
    }
    markThemeChoice();
    restorePlace();
    onContent(document);
    updateTickers();
    initSubmitForm();
    initLive();
    if (window.htmx) window.htmx.onLoad(function (el) { onContent(el); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
