/*
 * The forum's Markdown editor helpers (no build step, no inline script: CSP-friendly).
 * For a <form data-forum-editor> with a <textarea data-markdown-editor>:
 *  - an "Upload image" button: the file goes to data-upload-url; the answer's Markdown is inserted
 *    at the cursor (the server checks type and size and says what is wrong);
 *  - a "Preview" toggle: the text is rendered by the server (data-preview-url) exactly as it will
 *    be stored, sanitised;
 *  - a local draft: the text is kept in localStorage per form while typing, offered back when the
 *    page is opened again, and dropped when the form is sent.
 * Labels come from the form's data-label-* attributes (translated by the template).
 * Without JavaScript the form is a plain textarea and works the same.
 */
(function () {
  "use strict";

  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function button(label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-sm btn-ghost";
    b.textContent = label;
    return b;
  }

  function insertAtCursor(area, text) {
    var start = area.selectionStart || 0;
    var end = area.selectionEnd || 0;
    area.value = area.value.slice(0, start) + text + area.value.slice(end);
    area.selectionStart = area.selectionEnd = start + text.length;
    area.dispatchEvent(new Event("input"));
    area.focus();
  }

  function setup(form) {
    var area = form.querySelector("textarea[data-markdown-editor]");
    if (!area) return;
    var label = function (name, fallback) { return form.getAttribute("data-label-" + name) || fallback; };
    var bar = document.createElement("div");
    bar.className = "editor-bar";
    var status = document.createElement("span");
    status.className = "small muted";
    status.setAttribute("role", "status");
    var preview = document.createElement("div");
    preview.className = "md editor-preview hidden";

    var file = document.createElement("input");
    file.type = "file";
    file.accept = "image/png,image/jpeg,image/gif,image/webp";
    file.className = "hidden";
    var upload = button(label("upload", "Upload image"));
    upload.addEventListener("click", function () { file.click(); });
    file.addEventListener("change", function () {
      if (!file.files.length) return;
      var data = new FormData();
      data.append("image", file.files[0]);
      status.textContent = label("uploading", "Uploading…");
      fetch(form.getAttribute("data-upload-url"), { method: "POST", body: data, credentials: "same-origin", headers: { "X-CSRFToken": csrf() } })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (res.ok) { insertAtCursor(area, res.body.markdown); status.textContent = ""; }
          else { status.textContent = (res.body.error && res.body.error.message) || label("failed", "Upload failed."); }
        })
        .catch(function () { status.textContent = label("failed", "Upload failed."); })
        .then(function () { file.value = ""; });
    });

    var toggle = button(label("preview", "Preview"));
    toggle.setAttribute("aria-pressed", "false");
    toggle.addEventListener("click", function () {
      var showing = toggle.getAttribute("aria-pressed") === "true";
      if (showing) {
        preview.classList.add("hidden"); area.classList.remove("hidden");
        toggle.setAttribute("aria-pressed", "false"); toggle.textContent = label("preview", "Preview");
        return;
      }
      var data = new FormData();
      data.append("body", area.value);
      fetch(form.getAttribute("data-preview-url"), { method: "POST", body: data, credentials: "same-origin", headers: { "X-CSRFToken": csrf() } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r); })
        .then(function (html) {
          preview.innerHTML = html; // rendered and sanitised by the server (nh3), as stored
          preview.classList.remove("hidden"); area.classList.add("hidden");
          toggle.setAttribute("aria-pressed", "true"); toggle.textContent = label("edit", "Edit");
        })
        .catch(function () { status.textContent = label("failed", "Preview failed."); });
    });

    bar.appendChild(upload);
    bar.appendChild(toggle);
    bar.appendChild(status);
    bar.appendChild(file);
    area.parentNode.insertBefore(bar, area);
    area.parentNode.insertBefore(preview, area.nextSibling);

    // Local drafts, per page and form.
    var key = "rota-draft:" + location.pathname + ":" + (form.getAttribute("action") || "");
    var saved = null;
    try { saved = localStorage.getItem(key); } catch (e) { saved = null; }
    if (saved && !area.value.trim()) {
      var restore = button(label("restore", "Restore your draft"));
      restore.addEventListener("click", function () { area.value = saved; restore.remove(); area.focus(); });
      bar.appendChild(restore);
    }
    var timer = null;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        try { if (area.value.trim()) localStorage.setItem(key, area.value); else localStorage.removeItem(key); } catch (e) { /* storage full or off */ }
      }, 400);
    });
    form.addEventListener("submit", function () {
      clearTimeout(timer); // a save still pending must not bring the sent text back as a draft
      try { localStorage.removeItem(key); } catch (e) { /* ignore */ }
    });
  }

  function init() { document.querySelectorAll("form[data-forum-editor]").forEach(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
