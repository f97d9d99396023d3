/*
 * Rota realtime client — one websocket per page (an ES module, no build step, no framework).
 *
 *   import { realtime } from "./realtime.js"   // (from a module next to it)
 *   realtime.connect();                          // idempotent; opens /ws/events/ (session cookie)
 *   const off = realtime.on("chain.status", (event) => { ... });  // returns an unregister function
 *   realtime.on("reconnect", () => refetchWhatIsOnScreen());      // pseudo-events: open, reconnect, close
 *   realtime.subscribeChain(12);                 // events of a chain you may see (counted: call
 *   realtime.unsubscribeChain(12);               //   unsubscribe as often as subscribe)
 *   const log = realtime.followLog({chain: 12, rank: 0, cursor: null, tail: 65536,
 *                                   onLines(data, cursor) {...}, onEnd(status) {...},
 *                                   onBehind(cursor) {...}, onError(message) {...}});
 *   log.pause(); log.resume(); log.close();
 *
 * Events arrive as {type: "chain.status" | "attempt.started" | "attempt.suspended" |
 * "attempt.finished" | "chain.explanation" | "quota.usage" | "node.state" | "scheduler.pass" |
 * "container.status" | "notification.created" | "notification.read", ...fields};
 * `on("*", fn)` sees every message.
 *
 * The page hears them as DOM events too, dispatched on <body> (they bubble), so htmx regions
 * declare what refreshes them (`hx-trigger="rota:chain-12 from:body"`) and no script routes them:
 * - `rota:<type>` for every event (`rota:chain.status`, `rota:node.state`, …), detail = the event;
 * - `rota:chain-<id>` besides, for every event about chain <id> (it carries `chain_id`);
 * - `rota:live` whenever the socket opens (the first time too: what changed between rendering the
 *   page and the socket opening reached nobody), so a live region re-fetches itself;
 * - `rota:live-state` with detail {state} whenever the state changes.
 * Log stream messages (`log.*`) go only to their stream's callbacks.
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

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;
const PING_EVERY_MS = 25000;
const CLOSE_UNAUTHENTICATED = 4401;
const DEFAULT_LABELS = { connecting: "Connecting…", live: "Live", offline: "Offline" };

let socket = null;
let wanted = false; // connect() was called and the page wants a socket
let everOpened = false;
let attempt = 0; // consecutive failed attempts, for the backoff
let retryTimer = null;
let pingTimer = null;
let state = "offline";
const handlers = new Map(); // type -> Set of functions
const chains = new Map(); // chain id -> subscription count
const streams = new Map(); // stream id -> stream record
let nextStream = 1;

function url() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws/events/`;
}

function emit(type, payload) {
  for (const set of [handlers.get(type), handlers.get("*")]) {
    if (!set) continue;
    for (const fn of set) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`realtime handler for ${type} failed`, err);
      }
    }
  }
}

/** Tell the page, as a DOM event on <body> (htmx's `from:body` triggers listen there). */
function announce(name, detail) {
  const body = document.body;
  if (body) body.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));
}

function setState(next) {
  const changed = next !== state;
  state = next;
  for (const node of document.querySelectorAll("[data-realtime-status]")) {
    node.setAttribute("data-state", next);
    const label = node.getAttribute(`data-label-${next}`);
    node.textContent = label !== null ? label : DEFAULT_LABELS[next];
  }
  if (changed) announce("rota:live-state", { state: next });
}

function send(message) {
  if (socket && socket.readyState === 1) {
    socket.send(JSON.stringify(message));
    return true;
  }
  return false; // sent again on (re)connect
}

function followMessage(record) {
  const message = { action: "follow_log", stream: record.id, chain: record.chain, rank: record.rank };
  if (record.cursor) {
    message.cursor = record.cursor;
  } else if (record.tail !== null && record.tail !== undefined) {
    message.tail = record.tail;
  }
  return message;
}

function resume() {
  for (const id of chains.keys()) send({ action: "subscribe", chain: id });
  for (const record of streams.values()) {
    if (!record.paused) send(followMessage(record));
  }
}

function scheduleReconnect() {
  if (!wanted || retryTimer !== null) return;
  if (document.hidden) return; // visibilitychange reconnects
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  attempt += 1;
  const delay = Math.random() * ceiling; // full jitter: reconnecting pages do not stampede
  retryTimer = window.setTimeout(() => {
    retryTimer = null;
    open();
  }, delay);
}

function stopPing() {
  if (pingTimer !== null) {
    window.clearInterval(pingTimer);
    pingTimer = null;
  }
}

function open() {
  if (socket || !wanted) return;
  setState("connecting");
  let ws;
  try {
    ws = new window.WebSocket(url(), ["rota.v1"]);
  } catch (err) {
    setState("offline");
    scheduleReconnect();
    return;
  }
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    setState("live");
    resume();
    stopPing();
    pingTimer = window.setInterval(() => send({ action: "ping" }), PING_EVERY_MS);
    emit("open", { reconnected: everOpened });
    if (everOpened) emit("reconnect", {});
    everOpened = true;
    announce("rota:live", {});
  };
  ws.onmessage = (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (err) {
      return;
    }
    if (data && typeof data.type === "string") dispatch(data);
  };
  ws.onclose = (closeEvent) => {
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
  ws.onerror = () => {
    /* onclose follows */
  };
}

function dispatch(data) {
  const isStream = data.stream !== undefined;
  if (isStream && data.type.startsWith("log.")) {
    const record = streams.get(data.stream);
    if (record) onStreamMessage(record, data);
  } else if (data.type === "error" && isStream) {
    const failed = streams.get(data.stream);
    if (failed) {
      streams.delete(failed.id);
      if (failed.onError) failed.onError(data.message, data.code);
    }
  }
  if (data.type === "pong") return;
  emit(data.type, data);
  if (isStream) return; // a stream's messages are its own business
  announce(`rota:${data.type}`, data);
  if (data.chain_id !== undefined && data.chain_id !== null) announce(`rota:chain-${data.chain_id}`, data);
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
    window.clearTimeout(retryTimer);
    retryTimer = null;
  }
  stopPing();
  if (socket) {
    const ws = socket;
    socket = null;
    ws.close(1000);
  }
  setState("offline");
}

function onVisibility() {
  if (document.hidden) {
    if (socket) {
      const ws = socket;
      socket = null;
      stopPing();
      ws.close(1000);
      setState("offline");
      emit("close", { code: 1000, reason: "hidden" });
    }
    if (retryTimer !== null) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
    }
  } else if (wanted && !socket) {
    attempt = 0;
    open();
  }
}

export const realtime = {
  /** Open the page's socket (once); later calls do nothing. */
  connect() {
    if (!wanted) {
      wanted = true;
      if (!document.hidden) open();
    }
    return realtime;
  },

  /** Close the socket and stop reconnecting (subscriptions are kept for a later connect()). */
  disconnect: close,

  /** Call `handler(message)` for messages of `type` ("*" for all); returns an unregister function. */
  on(type, handler) {
    if (!handlers.has(type)) handlers.set(type, new Set());
    handlers.get(type).add(handler);
    return () => handlers.get(type).delete(handler);
  },

  /** "connecting", "live" or "offline". */
  state() {
    return state;
  },

  /** True while the socket is open. */
  isLive() {
    return state === "live";
  },

  subscribeChain(id) {
    const count = chains.get(id) || 0;
    chains.set(id, count + 1);
    if (count === 0) send({ action: "subscribe", chain: id });
  },

  unsubscribeChain(id) {
    const count = chains.get(id) || 0;
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
  followLog(options) {
    const record = {
      id: `s${nextStream++}`,
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
      pause() {
        if (record.paused || !streams.has(record.id)) return;
        record.paused = true;
        send({ action: "unfollow_log", stream: record.id });
      },
      resume() {
        if (!record.paused || !streams.has(record.id)) return;
        record.paused = false;
        send(followMessage(record));
      },
      close() {
        if (streams.delete(record.id)) send({ action: "unfollow_log", stream: record.id });
      },
      cursor() {
        return record.cursor;
      },
    };
  },
};

document.addEventListener("visibilitychange", onVisibility);
// A module runs after the document is parsed: the indicators are there to be set.
setState(state);
