// The plan as a calendar: one card per day with its date, theme, topics (learn, review,
// revision) and hours; the verifier's verdict above it. A topic opens its tutor.

import { describeError } from "../api.js";
import { latestPlan } from "../store.js";
import { errorBox, h, hours, show } from "../ui.js";

const KIND_LABEL = { learn: "learn", review: "spaced review", revision: "revision" };

export async function planPage() {
  show("Your plan", h("p", {}, "Loading your plan…"));
  let stored;
  try {
    stored = await latestPlan();
  } catch (err) {
    show("Your plan", errorBox(describeError(err)));
    return;
  }
  if (!stored) {
    show("Your plan", h("p", {}, "No plan yet. "), h("a", { href: "#/onboarding", class: "button primary" }, "Make a plan"));
    return;
  }
  const { plan, verification } = stored;
  show(
    plan.exam_name,
    h("p", { class: "lead" }, plan.overview),
    verdict(verification),
    h("ol", { class: "calendar", id: "calendar", "aria-label": "Study days" }, plan.schedule.map(dayCard)),
    plan.dropped_topics?.length
      ? h("section", {}, h("h2", {}, "Left out (no time)"), h("ul", {}, plan.dropped_topics.map((t) => h("li", {}, `${t.name}: ${t.reason}`))))
      : null,
  );
}

function verdict(v) {
  if (!v) return h("p", { class: "verdict" }, "Not verified.");
  const facts = [
    `${Math.round(v.coverage_percent)}% of ${v.required_topics_count} topics scheduled`,
    v.revision_present ? "revision day included" : "no revision day",
    v.overloaded_days.length ? `overloaded days: ${v.overloaded_days.join(", ")}` : "no day over the hours cap",
    v.prerequisite_issues.length ? `${v.prerequisite_issues.length} prerequisite issues` : "prerequisites in order",
  ];
  return h(
    "section",
    { class: `verdict ${v.is_valid ? "ok" : "warn"}`, id: "verdict", "aria-label": "Verifier's verdict" },
    h("strong", {}, v.is_valid ? "Verified ✓" : "Not valid yet"),
    h("ul", {}, facts.map((f) => h("li", {}, f))),
    v.critique ? h("p", {}, v.critique) : null,
  );
}

function dayCard(day) {
  const date = day.date ? new Date(`${day.date}T00:00:00`) : null;
  const when = date ? date.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" }) : "";
  return h(
    "li",
    { class: `day ${day.day_type}`, "data-day": day.day },
    h(
      "div",
      { class: "day-head" },
      h("span", { class: "day-no" }, `Day ${day.day}`),
      h("span", { class: "day-date" }, when),
      day.day_type !== "study" ? h("span", { class: "tag" }, day.day_type) : null,
    ),
    h("p", { class: "theme" }, day.theme),
    h(
      "ul",
      { class: "topics" },
      day.topics.map((t) =>
        h(
          "li",
          { class: `topic ${t.kind}` },
          h("a", { href: `#/learn?topic=${encodeURIComponent(t.name)}` }, t.name),
          t.parts > 1 ? h("span", { class: "muted" }, ` (${t.part}/${t.parts})`) : null,
          h("span", { class: "meta" }, `${KIND_LABEL[t.kind] || t.kind}${t.hours != null ? ` · ${hours(t.hours)}` : ""}`),
        ),
      ),
    ),
    h("p", { class: "day-hours" }, `${hours(day.estimated_hours)} in total`),
  );
}
