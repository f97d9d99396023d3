/* Clicks and keys anywhere on the page: dismissing toasts, copy buttons, dismissible notices
 * (remembered in localStorage), menus (<details class="menu">), "/" to search. */

import { copy } from "./clipboard.js";
import { $, $$ } from "./dom.js";

function closeMenus(except) {
  $$("details.menu[open]").forEach((d) => {
    if (d !== except && !d.contains(except)) d.open = false;
  });
}

function dismissedNotices() {
  try {
    return JSON.parse(localStorage.getItem("rota:notices") || "[]");
  } catch (e) {
    return [];
  }
}

/** Remove the notices the user dismissed before. */
export function hideDismissedNotices() {
  const ids = dismissedNotices();
  $$("[data-notice]").forEach((n) => {
    if (ids.includes(n.getAttribute("data-notice"))) n.remove();
  });
}

document.addEventListener("click", (e) => {
  const t = e.target;
  const dismiss = t.closest("[data-dismiss]");
  if (dismiss) {
    const el = dismiss.closest("[data-toast]");
    if (el) el.remove();
    return;
  }
  const copyButton = t.closest("[data-copy]");
  if (copyButton) {
    copy(copyButton.getAttribute("data-copy"));
    closeMenus();
    return;
  }
  const copyTarget = t.closest("[data-copy-target]");
  if (copyTarget) {
    const source = $(copyTarget.getAttribute("data-copy-target"));
    if (source) copy(source.textContent.trim());
    return;
  }
  if (t.closest("[data-copy-url]")) {
    copy(location.href);
    closeMenus();
    return;
  }
  const hide = t.closest("[data-dismiss-notice]");
  if (hide) {
    const notice = hide.closest("[data-notice]");
    const ids = dismissedNotices();
    ids.push(notice.getAttribute("data-notice"));
    try {
      localStorage.setItem("rota:notices", JSON.stringify(ids.slice(-100)));
    } catch (err) {
      /* private mode */
    }
    notice.remove();
    return;
  }
  const inMenu = t.closest("details.menu");
  closeMenus(inMenu);
  if (inMenu && t.closest(".menu-panel a")) inMenu.open = false;
});

document.addEventListener("keydown", (e) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
  if (e.key === "Escape") {
    $$("details.menu[open]").forEach((d) => {
      d.open = false;
      const s = d.querySelector("summary");
      if (s) s.focus();
    });
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "/") {
    const search = $$("[data-shortcut-search]").find((el) => el.offsetParent !== null);
    if (search) {
      e.preventDefault();
      search.focus();
      search.select();
    }
  }
});
