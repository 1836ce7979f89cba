// Progress: mastery per topic over time as a plot (inline SVG; the snapshots are the learner
// model's topic scores, kept in this browser each time they change), misconceptions by state,
// the FSRS reviews due, and how much of the plan has been studied so far.

import { describeError, get } from "../api.js";
import { latestPlan, masteryHistory, planTopics, recordMastery } from "../store.js";
import { errorBox, h, show } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563"];
const STATES = [
  ["open", "Open: diagnosed, not yet redeemed"],
  ["redeemed", "Redeemed: answered right, re-check due later"],
  ["resolved", "Resolved"],
];

export async function progressPage() {
  show("Progress", h("p", {}, "Loading…"));
  let mastery;
  let misconceptions;
  let stored;
  try {
    [mastery, misconceptions, stored] = await Promise.all([
      get("/api/learner/mastery"),
      get("/api/learner/misconceptions"),
      latestPlan().catch(() => null),
    ]);
  } catch (err) {
    show("Progress", errorBox(describeError(err)));
    return;
  }
  const history = recordMastery(mastery.topics);
  show(
    "Progress",
    h("section", { class: "card", "aria-labelledby": "plot-title" }, h("h2", { id: "plot-title" }, "Mastery per topic"), plot(history), table(mastery.topics)),
    h("div", { class: "grid2" }, coverage(stored, mastery), reviews(mastery.concepts)),
    misconceptionList(misconceptions.misconceptions),
  );
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Lines of each topic's score (0-100 %) across the snapshots; a dot per snapshot. */
function plot(history) {
  const topics = [...new Set(history.flatMap((s) => Object.keys(s.scores)))];
  if (!topics.length) return h("p", { id: "mastery-plot", class: "muted", "data-topics": 0 }, "No answers yet: take a quiz to see your mastery here.");
  const W = 640;
  const H = 240;
  const pad = { l: 40, r: 12, t: 12, b: 28 };
  const x = (i) => pad.l + (history.length === 1 ? (W - pad.l - pad.r) / 2 : (i * (W - pad.l - pad.r)) / (history.length - 1));
  const y = (score) => pad.t + ((100 - score) * (H - pad.t - pad.b)) / 100;
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    id: "mastery-plot",
    "data-topics": topics.length,
    "data-snapshots": history.length,
    "aria-label": `Mastery over ${history.length} snapshots for ${topics.join(", ")}`,
  });
  for (const level of [0, 25, 50, 75, 100]) {
    chart.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y(level), y2: y(level), class: "grid" }));
    chart.append(svg("text", { x: pad.l - 6, y: y(level) + 4, "text-anchor": "end", class: "axis" }, `${level}%`));
  }
  chart.append(svg("text", { x: W - pad.r, y: H - 6, "text-anchor": "end", class: "axis" }, "snapshots, oldest → newest"));
  topics.forEach((topic, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const points = history.map((s, i) => [i, s.scores[topic]]).filter(([, v]) => v !== undefined);
    const path = points.map(([i, v], j) => `${j ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const series = svg("g", { class: "series", "data-topic": topic }, svg("title", {}, topic));
    if (points.length > 1) series.append(svg("path", { d: path, stroke: colour, fill: "none", "stroke-width": 2.5 }));
    for (const [i, v] of points) series.append(svg("circle", { cx: x(i), cy: y(v), r: 4, fill: colour, "data-score": v }, svg("title", {}, `${topic}: ${Math.round(v)}%`)));
    chart.append(series);
  });
  const legend = h(
    "ul",
    { class: "legend" },
    topics.map((t, k) => h("li", {}, h("span", { class: "swatch", style: `background:${COLOURS[k % COLOURS.length]}` }), t)),
  );
  return h("figure", { class: "plot" }, chart, legend);
}

function table(topics) {
  if (!topics.length) return null;
  return h(
    "table",
    { class: "mastery", id: "mastery-table" },
    h("caption", { class: "sr-only" }, "Mastery now"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Topic"), h("th", { scope: "col" }, "Mastery"), h("th", { scope: "col" }, "Status"))),
    h(
      "tbody",
      {},
      topics.map((t) =>
        h("tr", { "data-topic": t.topic }, h("th", { scope: "row" }, t.topic), h("td", {}, h("meter", { min: 0, max: 100, value: t.score }), ` ${Math.round(t.score)}%`), h("td", {}, t.status)),
      ),
    ),
  );
}

function coverage(stored, mastery) {
  const topics = planTopics(stored?.plan);
  if (!topics.length) return h("section", { class: "card" }, h("h2", {}, "Plan coverage"), h("p", { class: "muted" }, "No plan yet."));
  const studied = new Set(mastery.topics.map((t) => t.topic.toLowerCase()));
  const done = topics.filter((t) => studied.has(t.toLowerCase()));
  const percent = Math.round((100 * done.length) / topics.length);
  return h(
    "section",
    { class: "card", id: "coverage" },
    h("h2", {}, "Plan coverage"),
    h("p", {}, h("meter", { min: 0, max: 100, value: percent }), ` ${done.length} of ${topics.length} topics studied (${percent}%)`),
    h("ul", { class: "checklist" }, topics.map((t) => h("li", { class: done.includes(t) ? "done" : "" }, done.includes(t) ? "✓ " : "○ ", t))),
  );
}

function reviews(concepts) {
  const now = Date.now();
  const scheduled = concepts.filter((c) => c.next_review).sort((a, b) => Date.parse(a.next_review) - Date.parse(b.next_review));
  const due = scheduled.filter((c) => Date.parse(c.next_review) <= now);
  return h(
    "section",
    { class: "card", id: "reviews" },
    h("h2", {}, "Reviews"),
    h("p", {}, due.length ? `${due.length} due now.` : "Nothing due now."),
    h(
      "ul",
      {},
      scheduled.slice(0, 8).map((c) =>
        h("li", {}, `${c.concept} (${c.topic}): `, Date.parse(c.next_review) <= now ? h("strong", {}, "due") : new Date(c.next_review).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })),
      ),
    ),
  );
}

function misconceptionList(records) {
  return h(
    "section",
    { class: "card", id: "misconceptions" },
    h("h2", {}, "Misconceptions"),
    STATES.map(([state, label]) => {
      const mine = records.filter((r) => r.state === state);
      return h(
        "div",
        { "data-state": state },
        h("h3", {}, `${label} (${mine.length})`),
        mine.length ? h("ul", {}, mine.map((r) => h("li", {}, h("strong", {}, r.topic), `: ${r.description}`))) : null,
      );
    }),
  );
}
