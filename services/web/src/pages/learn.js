// Learn: a topic's tutor, streamed token by token (typed NDJSON of /api/tutor/stream) and
// rendered as markdown with LaTeX; the chat of the topic is kept by the tutor (per topic id);
// PDFs uploaded to /api/materials ground the answer, and the pages it cites are listed and
// open the PDF at that page. Stop cancels the request, and so the model's generation.

import { describeError, formatBytes, get, ndjson, upload } from "../api.js";
import { latestPlan, planTopics } from "../store.js";
import { renderMarkdown } from "../markdown.js";
import { errorBox, field, h, show, topicId } from "../ui.js";

const MAX_PDF_BYTES = 10 * 1024 * 1024;
const openable = new Map(); // material id -> object URL of the file uploaded in this tab
const chosen = new Set(); // material ids the student asks the tutor to use

export async function learnPage(params) {
  let controller = null;
  const topicInput = h("input", { name: "topic", list: "plan-topics", required: true, value: params.get("topic") || "" });
  const topics = h("datalist", { id: "plan-topics" });
  const question = h("textarea", { name: "question", rows: 2, placeholder: "What would you like explained? (optional)" });
  const ask = h("button", { type: "submit", class: "primary", id: "ask" }, "Explain");
  const stop = h("button", { type: "button", id: "stop", disabled: true }, "Stop");
  const quizLink = h("a", { class: "button", id: "quiz-me" }, "Quiz me on it");
  const syncQuizLink = () => quizLink.setAttribute("href", `#/quiz?topic=${encodeURIComponent(topicInput.value.trim())}`);
  topicInput.addEventListener("input", syncQuizLink);
  syncQuizLink();
  const state = h("p", { id: "stream-state", role: "status", "aria-live": "polite" });
  const answer = h("article", { id: "answer", class: "answer markdown", "data-state": "idle", "aria-live": "off" });
  const citations = h("ul", { id: "citations", class: "citations", "aria-label": "Pages cited" });
  const chat = h("ol", { id: "chat", class: "chat", "aria-label": "Earlier in this topic" });
  const materials = h("ul", { id: "materials", class: "materials" });
  const fileInput = h("input", { type: "file", name: "file", accept: "application/pdf,.pdf", id: "pdf" });
  const uploadState = h("div", { "aria-live": "polite", id: "upload-state" });
  const uploadForm = h(
    "form",
    { class: "inline", id: "upload-form" },
    field("Add a PDF of your notes", fileInput, `Up to ${formatBytes(MAX_PDF_BYTES)}. The tutor cites its pages.`),
    h("button", { type: "submit" }, "Upload"),
  );
  const form = h(
    "form",
    { class: "card", id: "ask-form" },
    field("Topic", topicInput),
    topics,
    field("Your question", question),
    h("div", { class: "actions" }, ask, stop, quizLink),
  );

  show(
    "Learn",
    h(
      "div",
      { class: "learn-grid" },
      h("div", { class: "main-col" }, form, state, answer, h("h2", { class: "small" }, "Cited pages"), citations, h("h2", { class: "small" }, "Earlier in this topic"), chat),
      h("aside", { class: "side-col card", "aria-label": "Your material" }, h("h2", {}, "Your material"), uploadForm, uploadState, materials),
    ),
  );

  latestPlan()
    .then((p) => topics.replaceChildren(...planTopics(p?.plan).map((t) => h("option", { value: t }))))
    .catch(() => {});
  refreshMaterials();
  if (topicInput.value) loadChat();
  topicInput.addEventListener("change", () => loadChat());
  (topicInput.value ? question : topicInput).focus();

  /** The topic's kept chat; `shown` leaves out the exchange on screen above it. */
  async function loadChat({ shown = false } = {}) {
    const name = topicInput.value.trim();
    if (!name) return;
    try {
      const found = await get(`/api/tutor/chat?topic_id=${encodeURIComponent(topicId(name))}`);
      const messages = shown && found.messages.at(-1)?.role === "ai" ? found.messages.slice(0, -2) : found.messages;
      chat.replaceChildren(
        ...messages.map((m) =>
          h("li", { class: `turn ${m.role}` }, h("span", { class: "who" }, m.role === "ai" ? "Tutor" : "You"), h("div", { class: "markdown", html: renderMarkdown(m.content) })),
        ),
      );
      if (!messages.length) chat.replaceChildren(h("li", { class: "muted" }, "Nothing earlier in this topic."));
    } catch (err) {
      chat.replaceChildren(h("li", {}, errorBox(describeError(err))));
    }
  }

  async function refreshMaterials() {
    try {
      const found = await get("/api/materials");
      materials.replaceChildren(
        ...found.materials.map((m) => {
          const box = h("input", { type: "checkbox", id: `use-${m.id}`, checked: chosen.has(m.id) });
          box.addEventListener("change", () => (box.checked ? chosen.add(m.id) : chosen.delete(m.id)));
          return h(
            "li",
            { "data-material": m.id },
            box,
            h("label", { for: box.id }, `${m.title || "Untitled"} `, h("span", { class: "muted" }, `${m.kind}, ${m.pages} pages`)),
          );
        }),
      );
      if (!found.materials.length) materials.replaceChildren(h("li", { class: "muted" }, "No material yet."));
      return found.materials;
    } catch (err) {
      materials.replaceChildren(h("li", {}, errorBox(describeError(err))));
      return [];
    }
  }

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) {
      uploadState.replaceChildren(errorBox("Choose a PDF first."));
      return;
    }
    if (file.size > MAX_PDF_BYTES) {
      uploadState.replaceChildren(errorBox(`Too large: ${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(MAX_PDF_BYTES)}.`));
      return;
    }
    const form = new FormData();
    form.append("file", file);
    form.append("title", file.name.replace(/\.pdf$/i, ""));
    uploadState.replaceChildren(h("p", {}, `Uploading ${file.name}…`));
    try {
      const material = await upload("/api/materials", form);
      openable.set(material.id, URL.createObjectURL(file));
      chosen.add(material.id);
      uploadState.replaceChildren(h("p", { class: "ok" }, `${material.title}: ${material.pages} pages read.`));
      fileInput.value = "";
      await refreshMaterials();
    } catch (err) {
      uploadState.replaceChildren(errorBox(describeError(err)));
    }
  });

  stop.addEventListener("click", () => controller?.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const topic = topicInput.value.trim();
    if (!topic) return;
    controller = new AbortController();
    ask.disabled = true;
    stop.disabled = false;
    let text = "";
    let tokens = 0;
    let pending = false;
    const titles = new Map([...materials.querySelectorAll("li[data-material]")].map((li) => [li.dataset.material, li.querySelector("label").firstChild.textContent.trim()]));
    const render = () => {
      pending = false;
      // "[p. 3]" in the answer marks a page of the material: shown as a chip; the pages are listed under
      // the answer.
      answer.innerHTML = renderMarkdown(text).replace(/\[p\. (\d+)\]/g, '<span class="cite" title="cited page $1, listed below">p. $1</span>');
    };
    answer.replaceChildren();
    citations.replaceChildren();
    answer.dataset.state = "streaming";
    answer.setAttribute("aria-busy", "true");
    state.textContent = "The tutor is writing…";
    const body = {
      topic,
      context: question.value.trim(),
      topic_id: topicId(topic),
      material_ids: [...chosen],
    };
    try {
      for await (const event of ndjson("POST", "/api/tutor/stream?format=ndjson", { body, signal: controller.signal })) {
        if (event.kind === "token") {
          text += event.text;
          tokens += 1;
          answer.dataset.tokens = String(tokens);
          if (!pending) {
            pending = true;
            requestAnimationFrame(render);
          }
        } else if (event.kind === "reset") {
          // The tutor's check threw the text so far away (it began to loop): start again.
          text = "";
          answer.dataset.resets = String(Number(answer.dataset.resets || 0) + 1);
          state.textContent = "The tutor is writing that again…";
          if (!pending) {
            pending = true;
            requestAnimationFrame(render);
          }
        } else if (event.kind === "citation") {
          citations.append(citationItem(event.citation, titles));
        } else if (event.kind === "error") {
          state.textContent = "";
          answer.after(errorBox(event.error.message));
        } else if (event.kind === "done") {
          answer.dataset.state = event.partial ? "partial" : "done";
          answer.dataset.source = event.source || "model";
        }
      }
      render();
      state.textContent =
        answer.dataset.state !== "done"
          ? "The answer was cut short."
          : answer.dataset.source === "extract"
            ? "Quoted from your material: the model's answers did not pass the tutor's checks."
            : "Done.";
      if (!citations.children.length) citations.append(h("li", { class: "muted" }, "No page cited."));
      question.value = "";
      loadChat({ shown: true });
    } catch (err) {
      render();
      if (err.name === "AbortError") {
        answer.dataset.state = "stopped";
        state.textContent = "Stopped. The answer so far is kept above; ask again to continue.";
      } else {
        answer.dataset.state = "error";
        state.textContent = "";
        answer.after(errorBox(describeError(err)));
      }
    } finally {
      answer.removeAttribute("aria-busy");
      ask.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  });

  return () => controller?.abort();
}

function citationItem(citation, titles) {
  const title = titles.get(citation.material_id) || "your material";
  const text = `Page ${citation.page} of ${title}`;
  const url = openable.get(citation.material_id);
  if (!url) return h("li", { "data-page": citation.page }, text);
  return h("li", { "data-page": citation.page }, h("a", { href: `${url}#page=${citation.page}`, target: "_blank", rel: "noopener" }, text));
}
