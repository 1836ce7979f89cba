// Onboarding: exam, pasted syllabus, days and goal; the plan's stages appear as the planner
// streams them (POST /api/plan/stream-verified, NDJSON), then the calendar opens.

import { describeError, ndjson } from "../api.js";
import { go } from "../app.js";
import { rememberPlan } from "../store.js";
import { errorBox, field, h, show } from "../ui.js";

const SAMPLE = "- Kinematics\n- Projectile Motion\n- Newton's Laws of Motion\n- Work, Energy and Power";

export function onboardingPage() {
  const exam = h("input", { name: "exam_type", placeholder: "JEE, NEET, UPSC, CAT …", maxlength: 100 });
  const goal = h("input", { name: "goal", required: true, placeholder: "Master mechanics for JEE Main" });
  const syllabus = h("textarea", { name: "syllabus_text", rows: 5, placeholder: SAMPLE });
  const days = h("input", { name: "days", type: "number", min: 1, max: 365, value: 7, required: true });
  const perDay = h("input", { name: "hours_per_day", type: "number", min: 0.5, max: 16, step: 0.5, value: 2 });
  const drop = h("input", { type: "checkbox", name: "overflow", id: "overflow" });
  const submit = h("button", { type: "submit", class: "primary" }, "Make my plan");
  const stages = h("ol", { class: "stages", id: "stages", "aria-live": "polite" });
  const outcome = h("div", { id: "plan-outcome" });
  let controller = null;

  const form = h(
    "form",
    { class: "card", id: "onboarding-form" },
    h("div", { class: "row" }, field("Exam", exam), field("Days until the exam", days), field("Hours a day", perDay)),
    h("div", { id: "goal-field" }, field("Your goal", goal)),
    field("Syllabus", syllabus, "Paste the topics, one per line. Leave empty to plan from the exam's own syllabus."),
    h("div", { class: "option" }, drop, h("label", { for: "overflow" }, "If the days are too few, leave out the least important topics")),
    h("div", { class: "actions" }, submit),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    controller?.abort();
    controller = new AbortController();
    submit.disabled = true;
    stages.replaceChildren();
    outcome.replaceChildren();
    const body = {
      goal: goal.value.trim(),
      exam_type: exam.value.trim(),
      syllabus_text: syllabus.value.trim() || null,
      days: Number(days.value),
      hours_per_day: Number(perDay.value) || undefined,
      overflow: drop.checked ? "drop" : "refuse",
    };
    try {
      let lines = ndjson("POST", "/api/plan/stream-verified", { body, signal: controller.signal });
      while (lines) {
        const source = lines;
        lines = null;
        for await (const line of source) {
          if (line.type === "error" && line.code === "still_running") {
            // The gateway stopped waiting; the planner goes on. Follow the stored request.
            lines = ndjson("GET", line.location, { signal: controller.signal });
            break;
          }
          stages.append(stageItem(line));
          if (line.type === "complete") finish(line.final_result);
          if (line.type === "error") outcome.replaceChildren(errorBox(`${line.message} (${line.code})`));
        }
      }
    } catch (err) {
      outcome.replaceChildren(errorBox(describeError(err)));
    } finally {
      submit.disabled = false;
    }
  });

  function finish(result) {
    if (result.needs_clarification) {
      // Nothing was planned: the planner asks rather than guesses. An option fills the goal in.
      const choose = (option) => () => {
        goal.value = option;
        goal.focus();
      };
      outcome.replaceChildren(
        h(
          "div",
          { class: "card", id: "clarification", role: "alert" },
          h("p", {}, result.clarifying_question),
          h("div", { class: "actions" }, result.options.map((o) => h("button", { type: "button", onclick: choose(o) }, o))),
        ),
      );
      return;
    }
    rememberPlan({
      plan_id: result.plan_id,
      plan: result.final_plan,
      verification: result.verification || result.versions?.at(-1)?.verification || null,
    });
    outcome.replaceChildren(
      h("p", { class: "ok" }, `Your plan is ready: ${result.final_plan.total_days} days of ${result.final_plan.exam_name}.`),
      h("a", { href: "#/plan", class: "button primary", id: "open-plan" }, "Open the calendar"),
    );
  }

  show(
    "Plan your preparation",
    h("p", { class: "lead" }, "Tell ExamMentor what you are preparing for. The schedule is computed and checked, then explained."),
    form,
    h("section", { "aria-label": "Planning progress", id: "planning" }, h("h2", {}, "Progress"), stages, outcome),
  );
  goal.focus();
  return () => controller?.abort();
}

function stageItem(line) {
  if (line.type === "draft") {
    const plan = line.plan;
    const topics = new Set(plan.schedule.flatMap((d) => d.topics.map((t) => t.name)));
    return h("li", { "data-type": "draft" }, h("strong", {}, `Draft ${line.version}`), `: ${plan.schedule.length} days, ${topics.size} topics`);
  }
  if (line.type === "verification") {
    const r = line.result;
    return h(
      "li",
      { "data-type": "verification", class: r.is_valid ? "ok" : "warn" },
      h("strong", {}, `Check of draft ${line.version}`),
      `: ${r.is_valid ? "valid" : "needs fixing"}, ${Math.round(r.coverage_percent)}% of the topics covered`,
    );
  }
  if (line.type === "complete") return h("li", { "data-type": "complete", class: "ok" }, h("strong", {}, "Done"));
  if (line.type === "error") return h("li", { "data-type": "error", class: "warn" }, h("strong", {}, "Stopped"), `: ${line.message}`);
  return h("li", { "data-type": "status" }, line.message || line.stage);
}
