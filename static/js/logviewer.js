/* The log viewer: one rank of a job, across its attempts.
 *
 * The DOM holds a window of the log, [top, bottom), where a position is (attempt id, byte offset)
 * — never the whole file. Pages come from the portal's read endpoint (forwards from an offset,
 * backwards to one, or the tail of an attempt), so the viewer knows the byte offset of every
 * line: links to a line are ?rank=R&attempt=A&at=OFFSET, and scrolling up pages backwards, across
 * attempt separators too. Following the live end uses the page's websocket (realtime.followLog)
 * when it is live, and polls the read endpoint every second otherwise.
 *
 *   logviewer/context.js  configuration, elements, the shared state
 *   logviewer/format.js   log text: timestamps, separators, ANSI, byte offsets (no DOM)
 *   logviewer/view.js     the window in the DOM, scrolling, the status line
 *   logviewer/loading.js  reading pages: tail, around an offset, earlier, later
 *   logviewer/follow.js   following the live end (socket or polling)
 *   logviewer/search.js   search across ranks, matches, highlighting
 *   logviewer/toolbar.js  rank, line links, jumps, wrap and timestamps, keyboard
 */

import { cfg, state } from "./logviewer/context.js";
import { bindFollow } from "./logviewer/follow.js";
import { bindScroll, openAt, openTail } from "./logviewer/loading.js";
import { bindSearch } from "./logviewer/search.js";
import { bindToolbar } from "./logviewer/toolbar.js";

if (cfg) {
  bindScroll();
  bindFollow();
  bindSearch();
  bindToolbar();
  const params = new URLSearchParams(location.search);
  const at = params.get("at");
  const attempt = Number(params.get("attempt"));
  if (at !== null && state.attempts.includes(attempt)) openAt(attempt, Number(at) || 0, true);
  else openTail(true);
}
