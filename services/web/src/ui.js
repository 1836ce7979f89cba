// Small DOM helpers: elements built from data (never from HTML strings of model text).

/** An element: `h("p", {class: "x", onclick: f}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "html") el.innerHTML = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the main view with `children` and gives the page a title for assistive tech. */
export function show(title, ...children) {
  const view = document.getElementById("view");
  // Through append(), as h() does: a child left out (null) is skipped, never the text "null".
  view.replaceChildren(h("h1", {}, title));
  append(view, children);
  document.title = `${title} · ExamMentor`;
  view.focus({ preventScroll: true });
  return view;
}

/** A message in the page's live region (`kind`: info or error). */
export function notice(message, kind = "info") {
  const el = document.getElementById("notice");
  el.textContent = message;
  el.className = kind;
  el.hidden = !message;
}

/** A labelled form field. */
export function field(labelText, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, labelText), input, hintEl);
}

/** An error box inside a page, announced to screen readers. */
export function errorBox(message) {
  return h("p", { class: "error", role: "alert" }, message);
}

/** A URL-safe topic id (the tutor's chat memory is kept per topic id). */
export function topicId(name) {
  const slug = String(name).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return slug.slice(0, 60).replace(/-+$/, "") || "topic";
}

export function hours(n) {
  return `${Number(n).toFixed(n % 1 ? 1 : 0)} h`;
}
