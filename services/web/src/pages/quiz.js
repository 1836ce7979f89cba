// Quiz: questions arrive without their answers; on submit each answer is graded by the quiz
// service (/api/quiz/evaluate), and a wrong one is diagnosed (/api/quiz/misconception): the
// confusion, a counter-example and a redemption question to try straight away.

import { describeError, get, post } from "../api.js";
import { latestPlan, planTopics, recordMastery } from "../store.js";
import { errorBox, field, h, show } from "../ui.js";

export function quizPage(params) {
  const topic = h("input", { name: "topic", list: "quiz-topics", required: true, value: params.get("topic") || "" });
  const topics = h("datalist", { id: "quiz-topics" });
  const count = h("input", { name: "num_questions", type: "number", min: 1, max: 20, value: 3 });
  const make = h("button", { type: "submit", class: "primary" }, "New quiz");
  const area = h("div", { id: "quiz-area", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", id: "quiz-form" },
    h("div", { class: "row" }, field("Topic", topic), field("Questions", count)),
    topics,
    h("div", { class: "actions" }, make),
  );
  show("Quiz", form, area);
  latestPlan()
    .then((p) => {
      const names = planTopics(p?.plan);
      topics.replaceChildren(...names.map((t) => h("option", { value: t })));
      if (!topic.value && names.length) topic.value = names[0];
    })
    .catch(() => {});
  topic.focus();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    make.disabled = true;
    area.replaceChildren(h("p", {}, "Writing your quiz…"));
    try {
      const quiz = await post("/api/quiz/generate", { topic: topic.value.trim(), num_questions: Number(count.value) });
      area.replaceChildren(quizForm(quiz));
    } catch (err) {
      area.replaceChildren(errorBox(describeError(err)));
    } finally {
      make.disabled = false;
    }
  });
}

function choices(question, prefix) {
  return h(
    "fieldset",
    { class: "question", "data-question": question.id },
    h("legend", {}, question.text),
    question.source === "extract"
      ? h("p", { class: "muted source" }, `From your ${question.extracted_from || "text"}${question.page ? `, page ${question.page}` : ""}: built from the text, not written by the model.`)
      : null,
    question.options.map((option, index) => {
      const id = `${prefix}-${question.id}-${index}`;
      return h("div", { class: "option" }, h("input", { type: "radio", name: `${prefix}-${question.id}`, id, value: index }), h("label", { for: id }, option));
    }),
    h("div", { class: "verdict-slot" }),
  );
}

function picked(fieldset) {
  const checked = fieldset.querySelector("input[type=radio]:checked");
  return checked ? Number(checked.value) : null;
}

function quizForm(quiz) {
  const submit = h("button", { type: "submit", class: "primary" }, "Check my answers");
  const summary = h("p", { id: "quiz-summary", role: "status" });
  const form = h(
    "form",
    { class: "card", id: "quiz" },
    h("h2", {}, `${quiz.topic}: ${quiz.questions.length} questions, about ${quiz.time_estimate_minutes} min`),
    quiz.shortfall_reason ? h("p", { class: "muted" }, quiz.shortfall_reason) : null,
    quiz.questions.map((q) => choices(q, "q")),
    h("div", { class: "actions" }, submit),
    summary,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    let right = 0;
    let answered = 0;
    for (const fieldset of form.querySelectorAll("fieldset.question")) {
      const index = picked(fieldset);
      const slot = fieldset.querySelector(".verdict-slot");
      if (index === null) {
        slot.replaceChildren(h("p", { class: "muted" }, "Not answered."));
        continue;
      }
      answered += 1;
      for (const input of fieldset.querySelectorAll("input")) input.disabled = true;
      try {
        const body = { question_id: fieldset.dataset.question, student_answer_index: index };
        const verdict = await post("/api/quiz/evaluate", body);
        if (verdict.is_correct) right += 1;
        slot.replaceChildren(verdictView(verdict));
        fieldset.dataset.result = verdict.is_correct ? "right" : "wrong";
        if (!verdict.is_correct) slot.append(await diagnosis(body));
      } catch (err) {
        slot.replaceChildren(errorBox(describeError(err)));
      }
    }
    summary.textContent = `${right} of ${answered} answered right.`;
    form.dataset.graded = "true";
    try {
      recordMastery((await get("/api/learner/mastery")).topics);
    } catch {
      // the progress page reads it again
    }
  });
  return form;
}

function verdictView(v) {
  return h(
    "div",
    { class: `result ${v.is_correct ? "ok" : "warn"}` },
    h("strong", {}, v.is_correct ? "Right." : `Not quite. The answer is ${v.correct_answer}.`),
    h("p", {}, v.feedback),
    v.explanation ? h("p", { class: "muted" }, v.explanation) : null,
  );
}

async function diagnosis(body) {
  try {
    const d = await post("/api/quiz/misconception", body);
    const redemption = choices(d.redemption_question, "r");
    const check = h("button", { type: "button" }, "Check");
    check.addEventListener("click", async () => {
      const index = picked(redemption);
      const slot = redemption.querySelector(".verdict-slot");
      if (index === null) {
        slot.replaceChildren(h("p", { class: "muted" }, "Choose an answer first."));
        return;
      }
      try {
        const v = await post("/api/quiz/evaluate", { question_id: d.redemption_question.id, student_answer_index: index });
        slot.replaceChildren(verdictView(v));
        redemption.dataset.result = v.is_correct ? "right" : "wrong";
        recordMastery((await get("/api/learner/mastery")).topics);
      } catch (err) {
        slot.replaceChildren(errorBox(describeError(err)));
      }
    });
    return h(
      "section",
      { class: "diagnosis", "aria-label": "What went wrong" },
      h("h3", {}, "What went wrong"),
      h("p", { class: "confusion" }, d.inferred_confusion),
      h("p", {}, h("strong", {}, "Counter-example: "), d.counter_example),
      h("p", {}, d.explanation),
      h("h3", {}, "Try this one"),
      redemption,
      check,
    );
  } catch (err) {
    return errorBox(describeError(err));
  }
}
