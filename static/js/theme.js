/* The theme of the first paint: <html data-theme> holds the user's choice (light | dark | system,
 * from the cookie) and becomes light or dark here, with the choice kept in data-theme-choice.
 *
 * The one classic (non-module) script of the portal, on purpose: it must run in <head>, before the
 * page is painted, and a module always runs after parsing (the page would flash in the wrong
 * theme). It defines nothing global; switching later is static/js/portal/theme.js. */
{
  const root = document.documentElement;
  const saved = root.getAttribute("data-theme");
  const choice = saved === "light" || saved === "dark" ? saved : "system";
  const dark = choice === "dark" || (choice === "system" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  root.setAttribute("data-theme", dark ? "dark" : "light");
  root.setAttribute("data-theme-choice", choice);
}
