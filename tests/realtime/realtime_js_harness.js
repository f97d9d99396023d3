// Drives static/js/realtime.js (an ES module) in Node with a fake WebSocket, timers and document.
// Usage: node realtime_js_harness.js <path to realtime.js>; exits non-zero on a failed assertion.
"use strict";
const assert = require("assert");
const { pathToFileURL } = require("url");

const sockets = [];
class FakeSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    sockets.push(this);
  }
  send(text) {
    assert.strictEqual(this.readyState, 1, "sent on a socket that is not open");
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  serverOpens() {
    this.readyState = 1;
    this.onopen();
  }
  serverSends(message) {
    this.onmessage({ data: JSON.stringify(message) });
  }
  drops() {
    this.readyState = 3;
    this.onclose({ code: 1006, reason: "" });
  }
}

const listeners = {};
const indicator = {
  attributes: { "data-label-live": "En direct" },
  textContent: "",
  setAttribute(name, value) {
    this.attributes[name] = value;
  },
  getAttribute(name) {
    return name in this.attributes ? this.attributes[name] : null;
  },
};
// What the page hears as DOM events on <body>: [name, detail] in order.
const announced = [];
const document = {
  hidden: false,
  readyState: "interactive",
  body: {
    dispatchEvent(event) {
      assert.strictEqual(event.bubbles, true, `${event.type} does not bubble`);
      announced.push([event.type, event.detail]);
      return true;
    },
  },
  addEventListener(type, fn) {
    listeners[type] = fn;
  },
  querySelectorAll(selector) {
    assert.strictEqual(selector, "[data-realtime-status]");
    return [indicator];
  },
};
let timers = [];
const window = {
  location: { protocol: "https:", host: "rota.example" },
  WebSocket: FakeSocket,
  document,
  console,
  setTimeout(fn, ms) {
    timers.push({ fn, ms });
    return timers.length;
  },
  clearTimeout(id) {
    if (timers[id - 1]) timers[id - 1].fn = null;
  },
  setInterval() {
    return 1;
  },
  clearInterval() {},
};
function runTimers() {
  const due = timers.filter((t) => t.fn);
  timers = [];
  due.forEach((t) => t.fn());
  return due.map((t) => t.ms);
}

async function main() {
globalThis.window = window;
globalThis.document = document;
const { realtime: rt } = await import(pathToFileURL(process.argv[2]).href);
const seen = { open: 0, reconnect: 0, close: 0, status: [], lines: [], behind: [], end: [] };
rt.on("open", () => seen.open++);
rt.on("reconnect", () => seen.reconnect++);
rt.on("close", () => seen.close++);
rt.on("chain.status", (e) => seen.status.push(e.status));

// One socket per page, token-less (the cookie), rota.v1 offered; subscribing before it opens is queued.
assert.strictEqual(indicator.attributes["data-state"], "offline");
rt.connect();
rt.connect();
assert.strictEqual(sockets.length, 1);
const first = sockets[0];
assert.strictEqual(first.url, "wss://rota.example/ws/events/");
assert.deepStrictEqual(first.protocols, ["rota.v1"]);
assert.strictEqual(indicator.attributes["data-state"], "connecting");
rt.subscribeChain(5);
rt.subscribeChain(5);
first.serverOpens();
assert.deepStrictEqual(first.sent, [{ action: "subscribe", chain: 5 }]);
assert.strictEqual(indicator.attributes["data-state"], "live");
assert.strictEqual(indicator.textContent, "En direct");
assert.deepStrictEqual([seen.open, seen.reconnect], [1, 0]);

// Follow a log; lines move its cursor; events dispatch by type.
const log = rt.followLog({
  chain: 5,
  rank: 1,
  tail: 100,
  onLines: (data, cursor) => seen.lines.push([data, cursor]),
  onBehind: (cursor) => seen.behind.push(cursor),
  onEnd: (status) => seen.end.push(status),
});
assert.deepStrictEqual(first.sent[1], { action: "follow_log", stream: "s1", chain: 5, rank: 1, tail: 100 });
first.serverSends({ type: "log.lines", stream: "s1", chain: 5, rank: 1, data: "a\n", cursor: "7:10" });
first.serverSends({ type: "chain.status", chain_id: 5, status: "running" });
assert.deepStrictEqual(seen.lines, [["a\n", "7:10"]]);
assert.deepStrictEqual(seen.status, ["running"]);
// The page heard: the state changes, the socket opening, the chain's event by type and by chain —
// and nothing of the log stream (its lines are the stream's own).
const running = { type: "chain.status", chain_id: 5, status: "running" };
assert.deepStrictEqual(announced, [
  ["rota:live-state", { state: "connecting" }],
  ["rota:live-state", { state: "live" }],
  ["rota:live", {}],
  ["rota:chain.status", running],
  ["rota:chain-5", running],
]);
first.serverSends({ type: "node.state", node_id: 3, state: "ready" });
assert.deepStrictEqual(announced.slice(5), [["rota:node.state", { type: "node.state", node_id: 3, state: "ready" }]]);
first.serverSends({ type: "pong" });
assert.strictEqual(announced.length, 6, "a pong is not news");

// The connection drops: offline, a jittered retry within the first backoff step, then everything
// is re-subscribed and the log re-followed from its cursor, and the page is told to re-fetch.
first.drops();
assert.strictEqual(indicator.attributes["data-state"], "offline");
assert.strictEqual(indicator.textContent, "Offline");
assert.strictEqual(seen.close, 1);
const [delay] = runTimers();
assert.ok(delay >= 0 && delay <= 500, `first retry after ${delay} ms`);
const second = sockets[1];
second.serverOpens();
assert.deepStrictEqual(second.sent, [
  { action: "subscribe", chain: 5 },
  { action: "follow_log", stream: "s1", chain: 5, rank: 1, cursor: "7:10" },
]);
assert.deepStrictEqual([seen.open, seen.reconnect], [2, 1]);
// The page hears the reopening too (its live regions re-fetch themselves on rota:live).
assert.deepStrictEqual(announced.slice(-2), [["rota:live-state", { state: "live" }], ["rota:live", {}]]);

// Behind: told, and re-followed from the cursor at once. End: called once, not re-followed.
second.serverSends({ type: "log.behind", stream: "s1", chain: 5, rank: 1, cursor: "7:50" });
assert.deepStrictEqual(seen.behind, ["7:50"]);
assert.deepStrictEqual(second.sent[2], { action: "follow_log", stream: "s1", chain: 5, rank: 1, cursor: "7:50" });
second.serverSends({ type: "log.end", stream: "s1", chain: 5, rank: 1, status: "succeeded" });
assert.deepStrictEqual(seen.end, ["succeeded"]);
log.close();
assert.strictEqual(second.sent.length, 3, "a closed, ended stream sends nothing");

// Pause/resume of a live stream.
const other = rt.followLog({ chain: 6, cursor: "9:0" });
other.pause();
other.resume();
assert.deepStrictEqual(second.sent.slice(3), [
  { action: "follow_log", stream: "s2", chain: 6, rank: 0, cursor: "9:0" },
  { action: "unfollow_log", stream: "s2" },
  { action: "follow_log", stream: "s2", chain: 6, rank: 0, cursor: "9:0" },
]);
other.close();

// A hidden tab closes its socket and does not retry; visible again, it reconnects and re-fetches.
document.hidden = true;
listeners.visibilitychange();
assert.strictEqual(second.closedWith, 1000);
assert.strictEqual(indicator.attributes["data-state"], "offline");
assert.deepStrictEqual(runTimers(), []);
document.hidden = false;
listeners.visibilitychange();
const third = sockets[2];
third.serverOpens();
assert.deepStrictEqual(third.sent, [{ action: "subscribe", chain: 5 }]);
assert.strictEqual(seen.reconnect, 2);

// Subscriptions are counted; the last unsubscribe tells the server.
rt.unsubscribeChain(5);
assert.strictEqual(third.sent.length, 1);
rt.unsubscribeChain(5);
assert.deepStrictEqual(third.sent[1], { action: "unsubscribe", chain: 5 });

// Backoff grows (full jitter under a doubling ceiling, capped at 30 s) while the server is down.
third.drops();
const ceilings = [];
for (let i = 0; i < 9; i++) {
  const [ms] = runTimers();
  ceilings.push(ms);
  sockets[sockets.length - 1].drops();
}
ceilings.forEach((ms, i) => assert.ok(ms <= Math.min(30000, 500 * 2 ** i), `retry ${i} after ${ms} ms`));

// The server ends a socket whose sign-in ended (4401 after an "unauthenticated" error): the page
// hears why, and nothing reconnects — not a timer, not the tab becoming visible — until connect().
runTimers();
const live = sockets[sockets.length - 1];
live.serverOpens();
const errors = [];
rt.on("error", (e) => errors.push(e.code));
live.serverSends({ type: "error", code: "unauthenticated", message: "You were signed out." });
live.readyState = 3;
live.onclose({ code: 4401, reason: "" });
assert.deepStrictEqual(errors, ["unauthenticated"]);
assert.strictEqual(indicator.attributes["data-state"], "offline");
const socketsBefore = sockets.length;
assert.deepStrictEqual(runTimers(), []);
document.hidden = true;
listeners.visibilitychange();
document.hidden = false;
listeners.visibilitychange();
assert.strictEqual(sockets.length, socketsBefore);
rt.connect();
assert.strictEqual(sockets.length, socketsBefore + 1);
process.stdout.write("ok\n");
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
