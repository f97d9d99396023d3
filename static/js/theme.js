/* Resolve the theme before the first paint: <html data-theme> holds the user's choice
 * (light | dark | system); "system" follows the operating system and changes with it. */
(function () {
  "use strict";
  var root = document.documentElement;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  var choice = root.getAttribute("data-theme");
  if (choice !== "light" && choice !== "dark") choice = "system";
  function apply(value) {
    choice = value;
    var dark = value === "dark" || (value === "system" && media && media.matches);
    root.setAttribute("data-theme", dark ? "dark" : "light");
    root.setAttribute("data-theme-choice", value);
    try { window.dispatchEvent(new CustomEvent("rota:theme", { detail: { dark: dark, choice: value } })); } catch (e) { /* old browsers */ }
  }
  apply(choice);
  if (media && media.addEventListener) {
    media.addEventListener("change", function () { if (choice === "system") apply("system"); });
  }
  window.RotaTheme = { apply: apply, choice: function () { return choice; } };
})();
