/*
 * The forum's Markdown editor: EasyMDE (vendored, static/vendor/easymde/, see its README) on every
 * <textarea data-markdown-editor> inside a <form data-forum-editor>. No build step, no inline
 * script, nothing fetched from elsewhere (CSP: script-src 'self'):
 *  - toolbar icons from our Lucide sprite (EasyMDE would fetch Font Awesome from a CDN: off);
 *  - no spell-checker dictionaries from a CDN (EasyMDE's own checker: off; the browser's stays);
 *  - "Preview" renders on the server (data-preview-url) exactly as the text will be stored,
 *    sanitised by nh3 — never by EasyMDE's own Markdown renderer;
 *  - images (toolbar button, drag and drop, paste) go to data-upload-url, which checks type and
 *    size and answers {"url"} or {"error": {"message"}}; the message is shown as it is;
 *  - local drafts: EasyMDE's autosave in localStorage, per page and form, restored when the page
 *    is opened again and dropped when the form is sent.
 * Labels come from the form's data-label-* attributes (translated by the template).
 * Without JavaScript (or if EasyMDE failed to load) the form is a plain textarea and works the same.
 * An ES module: it runs after the document is parsed and after the deferred EasyMDE bundle.
 */
import { csrfToken } from "./portal/dom.js";

function post(url, data) {
  return fetch(url, { method: "POST", body: data, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } });
}

function setup(form) {
  const area = form.querySelector("textarea[data-markdown-editor]");
  if (!area || typeof window.EasyMDE !== "function") return;
  const label = function (name, fallback) { return form.getAttribute("data-label-" + name) || fallback; };
  const sprite = form.getAttribute("data-icon-sprite") || "";
  const status = document.createElement("p");
  status.className = "small editor-status";
  status.setAttribute("role", "status");

  function icon(name) {
    return '<svg class="icon" aria-hidden="true" focusable="false"><use href="' + sprite + "#i-" + name + '"></use></svg>';
  }
  function tool(name, action, title, iconName, noDisable) {
    // noDisable: the button stays usable while the preview shows (to leave it again).
    return { name: name, action: action, title: title, icon: icon(iconName), className: "mde-" + name, noDisable: !!noDisable };
  }

  let previews = 0;
  function previewRender(text, preview) {
    const mine = ++previews;
    let data = new FormData();
    data.append("body", text);
    post(form.getAttribute("data-preview-url"), data)
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r); })
      .then(function (html) {
        // Rendered and sanitised by the server (nh3), as it will be stored. A slower, older
        // answer never replaces a newer one.
        if (mine === previews) { preview.innerHTML = html; preview.classList.add("md"); }
      })
      .catch(function () { if (mine === previews) preview.textContent = label("failed", "That did not work; try again."); });
    return null; // keep what is shown until the server answers
  }

  function upload(file, onSuccess, onError) {
    let data = new FormData();
    data.append("image", file);
    post(form.getAttribute("data-upload-url"), data)
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (res.ok) onSuccess(res.body.url);
        else onError((res.body.error && res.body.error.message) || label("failed", "That did not work; try again."));
      })
      .catch(function () { onError(label("failed", "That did not work; try again.")); });
  }

  const editor = new window.EasyMDE({
    element: area,
    autoDownloadFontAwesome: false,
    spellChecker: false,
    nativeSpellcheck: true,
    inputStyle: "textarea",
    forceSync: true,
    minHeight: area.getAttribute("data-min-height") || "12rem",
    placeholder: area.getAttribute("placeholder") || "",
    promptURLs: false,
    indentWithTabs: false,
    autosave: {
      enabled: true,
      uniqueId: "rota-draft:" + location.pathname + ":" + (form.getAttribute("action") || ""),
      delay: 1000,
      text: label("saved", "Draft saved on this device: "),
    },
    previewRender: previewRender,
    uploadImage: true,
    imageUploadFunction: upload,
    imagePathAbsolute: true,
    imageAccept: "image/png, image/jpeg, image/gif, image/webp",
    imageTexts: {
      sbInit: label("drop", "Drop or paste an image to upload it."),
      sbOnDragEnter: label("drop-now", "Drop the image to upload it."),
      sbOnDrop: label("uploading", "Uploading…"),
      sbProgress: label("uploading", "Uploading…"),
      sbOnUploaded: label("uploaded", "Image uploaded."),
    },
    errorCallback: function (message) { status.textContent = message; },
    status: ["upload-image", "autosave"],
    toolbar: [
      tool("bold", window.EasyMDE.toggleBold, label("bold", "Bold"), "bold"),
      tool("italic", window.EasyMDE.toggleItalic, label("italic", "Italic"), "italic"),
      tool("heading", window.EasyMDE.toggleHeadingSmaller, label("heading", "Heading"), "heading"),
      "|",
      tool("quote", window.EasyMDE.toggleBlockquote, label("quote", "Quote"), "text-quote"),
      tool("unordered-list", window.EasyMDE.toggleUnorderedList, label("list", "List"), "list"),
      tool("ordered-list", window.EasyMDE.toggleOrderedList, label("ordered", "Numbered list"), "list-ordered"),
      tool("code", window.EasyMDE.toggleCodeBlock, label("code", "Code"), "code"),
      "|",
      tool("link", window.EasyMDE.drawLink, label("link", "Link"), "link"),
      tool("upload-image", window.EasyMDE.drawUploadedImage, label("upload", "Upload image"), "image-up"),
      tool("table", window.EasyMDE.drawTable, label("table", "Table"), "table"),
      "|",
      tool("preview", window.EasyMDE.togglePreview, label("preview", "Preview"), "eye", true),
      tool("fullscreen", window.EasyMDE.toggleFullScreen, label("fullscreen", "Full screen"), "maximize", true),
    ],
  });

  // The visible input gets the field's label (the original textarea is hidden).
  const input = editor.codemirror.getInputField();
  input.id = area.id + "-editor";
  input.setAttribute("aria-label", label("field", area.getAttribute("aria-label") || ""));
  const fieldLabel = form.querySelector('label[for="' + area.id + '"]');
  if (fieldLabel) fieldLabel.htmlFor = input.id;
  if (area.getAttribute("aria-invalid") === "true") input.setAttribute("aria-invalid", "true");
  const container = editor.codemirror.getWrapperElement().parentNode;
  container.parentNode.insertBefore(status, container.nextSibling);
  // EasyMDE says "saved" after every save, also when an empty text removed the draft: say so
  // only when there is a draft.
  const save = editor.autosave.bind(editor);
  editor.autosave = function () {
    save();
    const saved = document.getElementById("autosaved");
    if (saved && !editor.value()) saved.textContent = "";
  };
  editor.autosave();
  // Sent: no draft. EasyMDE 2.21 drops the stored draft on submit but not a save still pending
  // from the last keystrokes (its change timer), which then brings the sent text back as a draft.
  form.addEventListener("submit", function () {
    clearTimeout(editor._autosave_timeout);
    editor.clearAutosavedValue();
  });
  // A hidden textarea cannot take "required" or be focused: the server says what is missing.
  area.removeAttribute("required");
  form.rotaEditor = editor;
}

// A module runs once the document is parsed (and after the deferred EasyMDE bundle before it).
document.querySelectorAll("form[data-forum-editor]").forEach(setup);
