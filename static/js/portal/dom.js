/* Small DOM helpers shared by the portal's modules. */

/** The first element matching `sel` in `root` (the document by default). */
export function $(sel, root) {
  return (root || document).querySelector(sel);
}

/** Every element matching `sel` in `root`, as an array. */
export function $$(sel, root) {
  return Array.from((root || document).querySelectorAll(sel));
}

/**
 * The buttons carrying `attribute` as one choice (a chart's range or axis): a click marks that
 * button pressed and the others not (aria-pressed) and calls `pick` with its value.
 */
export function onChoice(attribute, pick) {
  $$(`[${attribute}]`).forEach((button) => {
    button.addEventListener("click", () => {
      $$(`[${attribute}]`).forEach((other) => other.setAttribute("aria-pressed", other === button ? "true" : "false"));
      pick(button.getAttribute(attribute));
    });
  });
}

/** The CSRF token (cookie, else a form's hidden input) for requests sent by script. */
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (m) return decodeURIComponent(m[1]);
  const input = $("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

const SPRITE = document.body.getAttribute("data-sprite") || "/static/vendor/lucide/sprite.svg";

/** The markup of a Lucide icon from the vendored sprite (as `{% icon %}` renders it). */
export function icon(name, css) {
  return `<svg class="icon ${css || ""}" aria-hidden="true"><use href="${SPRITE}#i-${name}"></use></svg>`;
}
