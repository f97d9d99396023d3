/*
 * Rota realtime client — one websocket per page (ES2019, no build step, no framework).
 *
 *   const rt = window.Rota.realtime;
 *   rt.connect();                              // idempotent; opens /ws/events/ (session cookie)
 *   const off = rt.on("chain.status", (event) => { ... });   // returns a function that unregisters
 *   rt.on("reconnect", () => refetchWhatIsOnScreen());          // pseudo-events: open, reconnect, close
 *   rt.subscribeChain(12);                     // events of a chain you may see (counted: call
 *   rt.unsubscribeChain(12);                   //   unsubscribe as often as subscribe)
 *   const log = rt.followLog({chain: 12, rank: 0, cursor: null, tail: 65536,
 *                             onLines(data, cursor) {...}, onEnd(status) {...}, onBehind(cursor) {...},
 *                             onError(message) {...}});
 *   log.pause(); log.resume(); log.close();
 *
 * Events arrive as {type: "chain.status" | "attempt.started" | "attempt.suspended" |
 * "attempt.finished" | "chain.explanation" | "quota.usage" | "node.state" |
 * "notification.created", ...fields}; `on("*", fn)` sees every message.
 *
 * Behaviour:
 * - Reconnects with exponential backoff and full jitter (0.5 s doubling to 30 s), then
 *   re-subscribes every chain and re-follows every log from its last cursor, and emits
 *   "reconnect" so the page re-fetches what it shows (an event missed while offline is never
 *   left wrong on screen).
 * - While the tab is hidden the socket is closed (hidden tabs cost the server nothing); it
 *   reconnects when the tab is visible again.
 * - A log stream that falls behind (`log.behind`) is re-followed from the given cursor at once;
 *   `onBehind(cursor)` is only informative. `onEnd(status)` is called once, when the job finished
 *   and everything was delivered; the stream is then closed.
 * - Any element with `data-realtime-status` shows the connection state: its `data-state`
 *   attribute is `connecting`, `live` or `offline`, and its text is taken from its
 *   `data-label-connecting` / `data-label-live` / `data-label-offline` attributes (translated by
 *   the template), or English defaults.
 *
 * The server protocol is described in apps/experiments/consumers.py.
 */
(function (global) {
  "use strict";

  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var PING_EVERY_MS = 25000;
  var CLOSE_UNAUTHENTICATED = 4401;
  var DEFAULT_LABELS = { connecting: "Connecting…", live: "Live", offline: "Offline" };

  var socket = null;
  var wanted = false; // connect() was called and the page wants a socket
  var everOpened = false;
  var attempt = 0; // consecutive failed attempts, for the backoff
  var retryTimer = null;
  var pingTimer = null;
  var state = "offline";
  var handlers = Object.create(null); // type -> Set of functions
  var chains = new Map(); // chain id -> subscription count
  var streams = new Map(); // stream id -> stream record
  var nextStream = 1;

  function url() {
    var scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + global.location.host + "/ws/events/";
  }

  function emit(type, payload) {
    var called = [handlers[type], handlers["*"]];
    called.forEach(function (set) {
      if (!set) return;
      set.forEach(function (fn) {
        try {
          fn(payload);
        } catch (err) {
          if (global.console) global.console.error("realtime handler for " + type + " failed", err);
        }
      });
    });
  }

  function setState(next) {
    state = next;
    var nodes = global.document ? global.document.querySelectorAll("[data-realtime-status]") : [];
    Array.prototype.forEach.call(nodes, function (node) {
      node.setAttribute("data-state", next);
      var label = node.getAttribute("data-label-" + next);
      node.textContent = label !== null ? label : DEFAULT_LABELS[next];
    });
  }

  function send(message) {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(message));
      return true;
    }
    return false; // sent again on (re)connect
  }

  function followMessage(record) {
    var message = { action: "follow_log", stream: record.id, chain: record.chain, rank: record.rank };
    if (record.cursor) {
      message.cursor = record.cursor;
    } else if (record.tail !== null && record.tail !== undefined) {
      message.tail = record.tail;
    }
    return message;
  }

  function resume() {
    chains.forEach(function (count, id) {
      send({ action: "subscribe", chain: id });
    });
    streams.forEach(function (record) {
      if (!record.paused) send(followMessage(record));
    });
  }

  function scheduleReconnect() {
    if (!wanted || retryTimer !== null) return;
    if (global.document && global.document.hidden) return; // visibilitychange reconnects
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    attempt += 1;
    var delay = Math.random() * ceiling; // full jitter: reconnecting pages do not stampede
    retryTimer = global.setTimeout(function () {
      retryTimer = null;
      open();
    }, delay);
  }

  function stopPing() {
    if (pingTimer !== null) {
      global.clearInterval(pingTimer);
      pingTimer = null;
    }
  }

  function open() {
    if (socket || !wanted) return;
    setState("connecting");
    var ws;
    try {
      ws = new global.WebSocket(url(), ["rota.v1"]);
    } catch (err) {
      setState("offline");
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      attempt = 0;
      setState("live");
      resume();
      stopPing();
      pingTimer = global.setInterval(function () {
        send({ action: "ping" });
      }, PING_EVERY_MS);
      emit("open", { reconnected: everOpened });
      if (everOpened) emit("reconnect", {});
      everOpened = true;
    };
    ws.onmessage = function (message) {
      var data;
      try {
        data = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (data && typeof data.type === "string") dispatch(data);
    };
    ws.onclose = function (closeEvent) {
      if (socket !== ws) return;
      socket = null;
      stopPing();
      setState("offline");
      emit("close", { code: closeEvent.code, reason: closeEvent.reason });
      // 4401: the session or token this socket was opened with ended (signed out elsewhere,
      // password changed, token revoked). Reconnecting cannot help until the user signs in.
      if (closeEvent.code === CLOSE_UNAUTHENTICATED) {
        wanted = false;
        return;
      }
      scheduleReconnect();
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  }

  function dispatch(data) {
    if (data.stream !== undefined && data.type.indexOf("log.") === 0) {
      var record = streams.get(data.stream);
      if (record) onStreamMessage(record, data);
    } else if (data.type === "error" && data.stream !== undefined) {
      var failed = streams.get(data.stream);
      if (failed) {
        streams.delete(failed.id);
        if (failed.onError) failed.onError(data.message, data.code);
      }
    }
    if (data.type !== "pong") emit(data.type, data);
  }

  function onStreamMessage(record, data) {
    if (data.type === "log.lines") {
      record.cursor = data.cursor;
      if (record.onLines) record.onLines(data.data, data.cursor);
    } else if (data.type === "log.behind") {
      record.cursor = data.cursor;
      if (record.onBehind) record.onBehind(data.cursor);
      if (!record.paused) send(followMessage(record)); // resume from where it stopped
    } else if (data.type === "log.end") {
      streams.delete(record.id);
      if (record.onEnd) record.onEnd(data.status);
    }
  }

  function close() {
    wanted = false;
    if (retryTimer !== null) {
      global.clearTimeout(retryTimer);
      retryTimer = null;
    }
    stopPing();
    if (socket) {
      var ws = socket;
      socket = null;
      ws.close(1000);
    }
    setState("offline");
  }

  function onVisibility() {
    if (!global.document) return;
    if (global.document.hidden) {
      if (socket) {
        var ws = socket;
        socket = null;
        stopPing();
        ws.close(1000);
        setState("offline");
        emit("close", { code: 1000, reason: "hidden" });
      }
      if (retryTimer !== null) {
        global.clearTimeout(retryTimer);
        retryTimer = null;
      }
    } else if (wanted && !socket) {
      attempt = 0;
      open();
    }
  }

  var api = {
    /** Open the page's socket (once); later calls do nothing. */
    connect: function () {
      if (!wanted) {
        wanted = true;
        if (!(global.document && global.document.hidden)) open();
      }
      return api;
    },

    /** Close the socket and stop reconnecting (subscriptions are kept for a later connect()). */
    disconnect: close,

    /** Call `handler(message)` for messages of `type` ("*" for all); returns an unregister function. */
    on: function (type, handler) {
      if (!handlers[type]) handlers[type] = new Set();
      handlers[type].add(handler);
      return function () {
        handlers[type].delete(handler);
      };
    },

    /** "connecting", "live" or "offline". */
    state: function () {
      return state;
    },

    subscribeChain: function (id) {
      var count = chains.get(id) || 0;
      chains.set(id, count + 1);
      if (count === 0) send({ action: "subscribe", chain: id });
    },

    unsubscribeChain: function (id) {
      var count = chains.get(id) || 0;
      if (count <= 1) {
        chains.delete(id);
        if (count === 1) send({ action: "unsubscribe", chain: id });
      } else {
        chains.set(id, count - 1);
      }
    },

    /**
     * Follow one rank's log. `cursor` ("<attempt>:<offset>") resumes exactly; else `tail` bytes
     * before the end; else from the beginning. Returns {pause(), resume(), close(), cursor()}.
     */
    followLog: function (options) {
      var record = {
        id: "s" + nextStream++,
        chain: options.chain,
        rank: options.rank || 0,
        cursor: options.cursor || null,
        tail: options.tail === undefined ? null : options.tail,
        onLines: options.onLines,
        onEnd: options.onEnd,
        onBehind: options.onBehind,
        onError: options.onError,
        paused: false,
      };
      streams.set(record.id, record);
      send(followMessage(record));
      return {
        pause: function () {
          if (record.paused || !streams.has(record.id)) return;
          record.paused = true;
          send({ action: "unfollow_log", stream: record.id });
        },
        resume: function () {
          if (!record.paused || !streams.has(record.id)) return;
          record.paused = false;
          send(followMessage(record));
        },
        close: function () {
          if (streams.delete(record.id)) send({ action: "unfollow_log", stream: record.id });
        },
        cursor: function () {
          return record.cursor;
        },
      };
    },
  };

  if (global.document) {
    global.document.addEventListener("visibilitychange", onVisibility);
    if (global.document.readyState === "loading") {
      global.document.addEventListener("DOMContentLoaded", function () {
        setState(state);
      });
    } else {
      setState(state);
    }
  }

  global.Rota = global.Rota || {};
  global.Rota.realtime = api;
})(window);
