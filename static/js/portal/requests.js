/* htmx requests the user made: the loading bar, errors said in a toast, a session that ended
 * (htmx followed the redirect to the sign-in page: go there instead of swapping it in), and the
 * list's filters kept short in the address. Background refreshes (live regions) stay silent. */

import { T } from "./i18n.js";
import { isLiveRegion } from "./live.js";
import { toast } from "./toast.js";

const background = (detail) => isLiveRegion(detail && detail.elt);

document.addEventListener("htmx:beforeRequest", (e) => {
  if (!background(e.detail)) document.body.classList.add("is-loading");
});
document.addEventListener("htmx:afterRequest", () => document.body.classList.remove("is-loading"));
document.addEventListener("htmx:beforeSwap", (e) => {
  const xhr = e.detail.xhr;
  if (xhr && xhr.responseURL && /\/login\/(\?|$)/.test(`${new URL(xhr.responseURL).pathname}?`)) {
    e.detail.shouldSwap = false;
    toast("warning", T.sessionExpired);
    setTimeout(() => {
      location.href = `/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
    }, 1200);
  }
});
document.addEventListener("htmx:responseError", (e) => {
  if (background(e.detail)) return;
  const status = e.detail.xhr ? e.detail.xhr.status : 0;
  toast("error", status === 404 ? T.notFound || T.requestFailed : T.requestFailed);
});
document.addEventListener("htmx:sendError", (e) => {
  if (!background(e.detail)) toast("error", T.requestFailed);
});

// Keep the list's address short: drop empty filters and defaults before htmx builds the URL.
const DEFAULTS = { scope: "mine", per_page: "25" };
document.addEventListener("htmx:configRequest", (e) => {
  if (!e.detail.elt || e.detail.elt.id !== "filters") return;
  const data = e.detail.formData;
  if (!data || typeof data.keys !== "function") return;
  for (const key of new Set(data.keys())) {
    if (data.getAll(key).every((v) => v === "" || DEFAULTS[key] === v)) data.delete(key);
  }
});
