// Autopilot: a timed study session the service runs by itself. Start, pause, resume and stop
// it; its steps appear live from GET /api/autopilot/watch/{id} (NDJSON, resumed from the last
// seq when the stream drops); a waiting question is answered in place; the study time left
// is counted down (paused time does not count).

import { describeError, get, ndjson, post } from "../api.js";
import { latestPlan } from "../store.js";
import { renderMarkdown } from "../markdown.js";
import { errorBox, field, h, show } from "../ui.js";

const FINISHED = new Set(["stopped", "completed", "failed"]);
const RUN_KEY = "exammentor.autopilot";

const ACTION_LABEL = {
  start: "Started",
  choose_topic: "Chose a topic",
  lesson: "Lesson",
  quiz: "Quiz written",
  answer: "Answer graded",
  skip: "Question skipped (no answer in time)",
  diagnose: "Mistake diagnosed",
  update_mastery: "Mastery updated",
  pause: "Paused",
  resume: "Resumed",
  stop: "Stopped",
  complete: "Completed",
  fail: "Failed",
};

export function autopilotPage() {
  let watching = null; // AbortController of the watch stream
  let ticker = null;
  let sessionId = sessionStorage.getItem(RUN_KEY);
  let status = null;
  let remaining = 0;

  const minutes = h("input", { name: "duration_minutes", type: "number", min: 5, max: 480, value: 30 });
  const start = h("button", { type: "submit", class: "primary", id: "ap-start" }, "Start");
  const pause = h("button", { type: "button", id: "ap-pause", disabled: true }, "Pause");
  const resume = h("button", { type: "button", id: "ap-resume", disabled: true }, "Resume");
  const stop = h("button", { type: "button", id: "ap-stop", disabled: true }, "Stop");
  const badge = h("span", { id: "ap-status", class: "badge" }, "not started");
  const phase = h("span", { id: "ap-phase", class: "muted" });
  const clock = h("span", { id: "ap-remaining", "aria-label": "Study time left" });
  const message = h("div", { id: "ap-message", "aria-live": "polite" });
  const content = h("article", { id: "ap-content", class: "markdown" });
  const questionSlot = h("div", { id: "ap-question" });
  const steps = h("ol", { id: "ap-steps", class: "steps", "aria-label": "Steps", reversed: true });

  const form = h(
    "form",
    { class: "card", id: "ap-form" },
    field("Study time (minutes)", minutes),
    h("div", { class: "actions" }, start, pause, resume, stop),
  );
  show(
    "Autopilot",
    h("p", { class: "lead" }, "The autopilot picks a topic from your plan, teaches it, quizzes you and diagnoses mistakes, until the time is up."),
    form,
    h("section", { class: "card", "aria-label": "Run" }, h("p", { class: "run-line" }, badge, " ", phase, " ", clock), message, questionSlot, content),
    h("section", {}, h("h2", {}, "Steps"), steps),
  );

  function setStatus(view) {
    status = view.status;
    badge.textContent = view.status;
    badge.dataset.status = view.status;
    phase.textContent = view.current_topic ? `${view.current_phase.replaceAll("_", " ")} · ${view.current_topic}` : view.current_phase.replaceAll("_", " ");
    start.disabled = !FINISHED.has(view.status);
    pause.disabled = view.status !== "running";
    resume.disabled = view.status !== "paused";
    stop.disabled = FINISHED.has(view.status);
    if (view.current_content) content.innerHTML = renderMarkdown(view.current_content);
    if (view.awaiting_input && view.current_question) showQuestion(view.current_question);
    else if (!view.awaiting_input) questionSlot.replaceChildren();
  }

  function setClock(view) {
    remaining = Math.max(0, view.target_duration_minutes * 60 - view.elapsed_seconds);
    paintClock();
  }

  function paintClock() {
    const m = Math.floor(remaining / 60);
    const s = Math.floor(remaining % 60);
    clock.textContent = `${m}:${String(s).padStart(2, "0")} left`;
  }

  ticker = setInterval(() => {
    if (status === "running" && remaining > 0) {
      remaining -= 1;
      paintClock();
    }
  }, 1000);

  function showQuestion(q) {
    if (questionSlot.dataset.question === q.id) return;
    questionSlot.dataset.question = q.id;
    const answer = h("button", { type: "submit", class: "primary" }, "Answer");
    const qform = h(
      "form",
      { class: "question-card", id: "ap-answer" },
      h(
        "fieldset",
        { class: "question" },
        h("legend", {}, q.text),
        q.options.map((option, index) =>
          h("div", { class: "option" }, h("input", { type: "radio", name: "ap-option", id: `ap-o${index}`, value: index, required: true }), h("label", { for: `ap-o${index}` }, option)),
        ),
      ),
      answer,
    );
    qform.addEventListener("submit", async (event) => {
      event.preventDefault();
      const checked = qform.querySelector("input:checked");
      if (!checked) return;
      answer.disabled = true;
      try {
        await post(`/api/autopilot/answer/${sessionId}`, { question_id: q.id, answer_index: Number(checked.value) });
        qform.replaceWith(h("p", { class: "muted", id: "ap-answered" }, "Answer sent; grading…"));
      } catch (err) {
        answer.disabled = false;
        message.replaceChildren(errorBox(describeError(err)));
      }
    });
    questionSlot.replaceChildren(qform);
  }

  function stepItem(step) {
    const data = step.data || {};
    let detail = step.reasoning;
    if (step.action === "answer") detail = data.correct ? "Right." : "Wrong; a diagnosis follows.";
    if (step.action === "diagnose" && data.misconception) detail = String(data.misconception);
    if (step.action === "update_mastery" && data.topic) detail = `${data.topic}: ${Math.round(Number(data.score) * 100)}%`;
    return h(
      "li",
      { "data-action": step.action, "data-number": step.number },
      h("strong", {}, ACTION_LABEL[step.action] || step.action),
      detail ? h("span", {}, ` — ${detail}`) : null,
    );
  }

  async function refresh() {
    const view = await get(`/api/autopilot/status/${sessionId}`);
    setStatus(view);
    setClock(view);
    return view;
  }

  async function watch() {
    watching?.abort();
    const controller = new AbortController();
    watching = controller;
    let after = 0;
    steps.replaceChildren();
    try {
      const view = await refresh();
      for (const step of view.steps) steps.prepend(stepItem(step));
      after = view.steps.length ? view.steps.at(-1).number : 0;
      while (!controller.signal.aborted && !FINISHED.has(status)) {
        for await (const event of ndjson("GET", `/api/autopilot/watch/${sessionId}?after=${after}`, { signal: controller.signal })) {
          after = event.seq;
          if (!steps.querySelector(`[data-number="${event.step.number}"]`)) steps.prepend(stepItem(event.step));
          setStatus(event);
          if (["pause", "resume", "answer", "skip", "complete", "stop", "fail"].includes(event.step.action)) await refresh();
        }
        await refresh();
        // The stream ended while the run goes on (a restart or a proxy): follow again shortly.
        if (!FINISHED.has(status)) await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } catch (err) {
      if (err.name !== "AbortError") message.replaceChildren(errorBox(describeError(err)));
    }
  }

  async function control(action) {
    message.replaceChildren();
    try {
      const answer = await post(`/api/autopilot/${action}/${sessionId}`);
      badge.textContent = answer.status;
      await refresh();
    } catch (err) {
      message.replaceChildren(errorBox(describeError(err)));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    try {
      const stored = await latestPlan();
      if (!stored) {
        message.replaceChildren(errorBox("Make a plan first: the autopilot studies its topics."), h("a", { href: "#/onboarding" }, "Make a plan"));
        return;
      }
      start.disabled = true;
      const run = await post("/api/autopilot/start", { study_plan: stored.plan, duration_minutes: Number(minutes.value) });
      sessionId = run.session_id;
      sessionStorage.setItem(RUN_KEY, sessionId);
      questionSlot.replaceChildren();
      delete questionSlot.dataset.question;
      content.replaceChildren();
      watch();
    } catch (err) {
      start.disabled = false;
      message.replaceChildren(errorBox(describeError(err)));
    }
  });
  pause.addEventListener("click", () => control("pause"));
  resume.addEventListener("click", () => control("resume"));
  stop.addEventListener("click", () => control("stop"));

  if (sessionId) watch();

  return () => {
    watching?.abort();
    clearInterval(ticker);
  };
}
