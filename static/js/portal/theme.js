/* The theme after the first paint: the user's choice (light | dark | system) from the menu, and
 * "system" following the operating system as it changes. (The first paint itself is resolved by
 * the classic static/js/theme.js in <head>; see there.) Charts listen to `rota:theme` on window. */

const root = document.documentElement;
const media = window.matchMedia("(prefers-color-scheme: dark)");

/** "light", "dark" or "system". */
export function themeChoice() {
  return root.getAttribute("data-theme-choice") || "system";
}

/** Show the page in `choice` at once and tell whoever draws with colours. */
export function applyTheme(choice) {
  const dark = choice === "dark" || (choice === "system" && media.matches);
  root.setAttribute("data-theme", dark ? "dark" : "light");
  root.setAttribute("data-theme-choice", choice);
  window.dispatchEvent(new CustomEvent("rota:theme", { detail: { dark, choice } }));
}

media.addEventListener("change", () => {
  if (themeChoice() === "system") applyTheme("system");
});
