/* Copy to the clipboard, with a fallback where the Clipboard API is missing (plain http). */

import { T } from "./i18n.js";
import { toast } from "./toast.js";

function fallback(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (e) {
    ok = false;
  }
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error("copy"));
}

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).catch(() => fallback(text));
  }
  return fallback(text);
}

/** Copy `text` and say so (`message`, else "Copied"). */
export function copy(text, message) {
  return copyText(text).then(
    () => toast("success", message || T.copied),
    () => toast("warning", T.copyFailed),
  );
}
