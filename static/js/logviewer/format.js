/* Log text, without the DOM: timestamps, attempt separators, ANSI codes, error and warning lines,
 * and the byte offsets of lines (positions in a log are bytes: (attempt id, byte offset)). */

export const TS_RE = /^\[(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.(\d{3})\d{3}\] /;
export const SEP_RE = /^──── attempt (\d+) \(id (\d+)\) ────$/;
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;
export const ERR_RE = /\b(Traceback|ERROR|Error:|Exception|FATAL|CUDA error|Killed)\b/;
export const WARN_RE = /\b(WARNING|WARN|Warning:)\b/;
const encoder = new TextEncoder();

/** The length of ``text`` in bytes (UTF-8), as the server counts offsets. */
export function bytes(text) {
  return encoder.encode(text).length;
}

/** What a terminal would show of a line: the last carriage-return overwrite, no ANSI codes. */
export function cleanText(text) {
  if (text.indexOf("\r") >= 0) {
    let parts = text.split("\r").filter(function (p) { return p !== ""; });
    text = parts.length ? parts[parts.length - 1] : "";
  }
  return text.replace(ANSI_RE, "");
}

/** Whole lines of ``data`` (read from ``start`` in ``attempt``) as records with byte offsets. */
export function records(data, attempt, start) {
  const out = [];
  if (!data) return out;
  let parts = data.split("\n");
  if (parts[parts.length - 1] === "") parts.pop();
  let off = start;
  parts.forEach(function (text) {
    const end = off + bytes(text) + 1;
    out.push({ a: attempt, o: off, e: end, text: text });
    off = end;
  });
  return out;
}
