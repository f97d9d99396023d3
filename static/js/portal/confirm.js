/* Questions before an action: a submit button with data-confirm (plain forms and htmx forms alike)
 * asks in the page's <dialog>, and an action the user confirmed is never dropped — not even when a
 * live refresh replaced its form while the question was open (live.js holds refreshes back while
 * the dialog is open, but one already in flight may land). */

import { $ } from "./dom.js";

/** Ask `question` in the confirmation dialog; resolves true when the user confirms. */
export function confirmDialog(question, danger) {
  const dialog = $("#confirm-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(question));
  $("#confirm-text", dialog).textContent = question;
  $("#confirm-ok", dialog).classList.toggle("btn-danger-solid", !!danger);
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("#confirm-ok", dialog).focus();
  });
}

/** A destructive action confirms with a red button: the submitter is a .btn-danger, or a menu item
 * marked data-confirm-danger. */
function isDanger(submitter) {
  return !!submitter && (submitter.classList.contains("btn-danger") || submitter.hasAttribute("data-confirm-danger"));
}

// Plain (non-htmx) forms: a submit button with data-confirm asks first.
document.addEventListener("submit", (e) => {
  const form = e.target;
  const submitter = e.submitter;
  if (e.defaultPrevented || form.hasAttribute("hx-post") || form.hasAttribute("hx-get")) return;
  const question = submitter && submitter.getAttribute("data-confirm");
  if (!question || form.dataset.confirmed) return;
  e.preventDefault();
  confirmDialog(question, isDanger(submitter)).then((ok) => {
    if (!ok) return;
    // A live refresh may have replaced the form meanwhile: a detached form does not submit.
    if (!form.isConnected) {
      form.hidden = true;
      document.body.appendChild(form);
    }
    form.dataset.confirmed = "1";
    form.requestSubmit(submitter);
    delete form.dataset.confirmed;
  });
});

/** The element as it is in the page now (a refresh replaces elements with the same id). */
function current(el) {
  if (!el) return null;
  if (document.body.contains(el)) return el;
  return el.id ? document.getElementById(el.id) : null;
}

/** Send a confirmed request whose element a live refresh replaced while the question was open
 * (htmx silently drops a request from a detached element): the same method, address and form
 * values, into the target as it is in the page now. */
function resendConfirmed(detail) {
  const elt = detail.elt;
  const form = elt.tagName === "FORM" ? elt : elt.form || elt.closest("form");
  const values = {};
  if (form) new FormData(form).forEach((value, key) => (values[key] = value));
  const swapper = elt.closest("[hx-swap]");
  const target = current(detail.target);
  if (!target) {
    // Nowhere to show the answer: submit as a plain form (every action form also works without htmx).
    if (form) {
      form.hidden = true;
      document.body.appendChild(form);
      form.submit();
    }
    return;
  }
  window.htmx.ajax(String(detail.verb).toUpperCase(), detail.path, {
    target,
    swap: swapper ? swapper.getAttribute("hx-swap") : "innerHTML",
    values,
  });
}

// htmx forms: the question comes from hx-confirm or the submit button's data-confirm.
document.addEventListener("htmx:confirm", (e) => {
  const trigger = e.detail.triggeringEvent;
  const submitter = trigger && trigger.submitter;
  const question = e.detail.question || (submitter && submitter.getAttribute("data-confirm"));
  if (!question) return;
  e.preventDefault();
  const detail = e.detail;
  confirmDialog(question, isDanger(submitter)).then((ok) => {
    if (!ok) return;
    if (document.body.contains(detail.elt)) detail.issueRequest(true);
    else resendConfirmed(detail);
  });
});
