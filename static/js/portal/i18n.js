/* The page's translated strings (the template's `js_strings`, a JSON script) and a formatter. */

const stringsEl = document.getElementById("rota-i18n");

/** Translated strings by key (empty on a page without them). */
export const T = stringsEl ? JSON.parse(stringsEl.textContent) : {};

/** The page's language, for dates and numbers. */
export const LANG = document.documentElement.lang || "en";

/** "%(n)s jobs", {n: 3} → "3 jobs"; supports %(x)02d zero-padding. */
export function fmt(text, values) {
  return String(text || "").replace(/%\((\w+)\)(0?)(\d*)[sd]/g, (_m, key, zero, width) => {
    let v = values && key in values ? String(values[key]) : "";
    if (zero && width) v = v.padStart(Number(width), "0");
    return v;
  });
}
