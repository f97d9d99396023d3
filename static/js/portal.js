/* Rota portal behaviour: small, dependency-free ES modules, no build step, progressive (every
 * page works without them). This entry module starts them; each says what it does:
 *
 *   portal/live.js         live regions (declared in templates with htmx; polling fallback)
 *   portal/requests.js     htmx requests: loading bar, errors, expired session, short filter URLs
 *   portal/confirm.js      confirmation dialog for data-confirm buttons
 *   portal/toast.js        toasts              portal/clipboard.js  copy buttons
 *   portal/ui.js           clicks and keys: menus, notices, "/" to search
 *   portal/preferences.js  theme and language menus     portal/theme.js  theme switching
 *   portal/times.js        relative times and running-time tickers
 *   portal/selection.js    list selection and batch bar, filters
 *   portal/submit-form.js  the submit form's helpers
 *   realtime.js            the page's one websocket
 */

import { $$ } from "./portal/dom.js";
import { initLive } from "./portal/live.js";
import { markThemeChoice, restorePlace } from "./portal/preferences.js";
import "./portal/confirm.js";
import "./portal/requests.js";
import { syncSelection } from "./portal/selection.js";
import { initSubmitForm } from "./portal/submit-form.js";
import { startClocks, updateTimes } from "./portal/times.js";
import { armToast, initToasts } from "./portal/toast.js";
import { hideDismissedNotices } from "./portal/ui.js";

/** What new content (the page, or an htmx swap) needs. */
function onContent(root) {
  updateTimes(root);
  hideDismissedNotices();
  syncSelection();
  $$("[data-toast]", root).forEach(armToast);
}

initToasts();
markThemeChoice();
restorePlace();
onContent(document);
startClocks();
initSubmitForm();
initLive();
// htmx is a classic deferred script: it has run before any module (modules run after deferred
// scripts that come before them). Without it (failed to load) the forms work as plain forms.
if (window.htmx) window.htmx.onLoad((el) => onContent(el));
