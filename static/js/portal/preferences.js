/* The theme and language menus. The theme form is an htmx form (hx-post, no swap): the page
 * changes at once here and the server remembers the choice; without htmx it is a plain form. The
 * language form keeps the reader's place: the same address, scrolled where it was. */

import { $$ } from "./dom.js";
import { applyTheme, themeChoice } from "./theme.js";

/** Mark the current choice in the theme menu. */
export function markThemeChoice() {
  const choice = themeChoice();
  $$("[data-theme-form] button[name=theme]").forEach((b) => {
    const on = b.value === choice;
    b.classList.toggle("current", on);
    b.setAttribute("aria-current", on ? "true" : "false");
  });
}

document.addEventListener("submit", (e) => {
  const form = e.target.closest("[data-theme-form]");
  if (!form || !e.submitter) return;
  const value = e.submitter.value;
  applyTheme(value);
  document.cookie = `rota_theme=${value}; path=/; max-age=31536000; samesite=lax`;
  markThemeChoice();
  const menu = form.closest("details");
  if (menu) menu.open = false;
});

document.addEventListener(
  "submit",
  (e) => {
    const form = e.target.closest("[data-keep-place]");
    if (!form) return;
    const next = form.querySelector("input[name=next]");
    if (next) next.value = location.pathname + location.search + location.hash;
    try {
      sessionStorage.setItem("rota:place", JSON.stringify({ path: location.pathname + location.search, y: window.scrollY }));
    } catch (err) {
      /* private mode */
    }
  },
  true,
);

/** Back on the page the language form was sent from: scroll to where the reader was. */
export function restorePlace() {
  let raw;
  try {
    raw = sessionStorage.getItem("rota:place");
    sessionStorage.removeItem("rota:place");
  } catch (e) {
    return;
  }
  if (!raw) return;
  const place = JSON.parse(raw);
  if (place.path === location.pathname + location.search && place.y) {
    requestAnimationFrame(() => window.scrollTo(0, place.y));
  }
}
