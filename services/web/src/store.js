// What the pages share: the student's latest plan (stored by the gateway) and the mastery
// snapshots the progress plot is drawn from (kept in this browser, per student).

import { get, userName } from "./api.js";

let cachedPlan = null;

/** The student's newest stored plan (`{plan_id, plan, verification}`), or null. */
export async function latestPlan({ refresh = false } = {}) {
  if (cachedPlan && !refresh) return cachedPlan;
  const listed = await get("/api/plans?limit=1");
  if (!listed.plans.length) return null;
  cachedPlan = await get(`/api/plans/${listed.plans[0].plan_id}`);
  return cachedPlan;
}

export function rememberPlan(result) {
  cachedPlan = result;
}

export function forgetAll() {
  cachedPlan = null;
}

/** The topics of a plan in study order, each once. */
export function planTopics(plan) {
  const names = [];
  for (const day of plan?.schedule || []) {
    for (const topic of day.topics) if (!names.includes(topic.name)) names.push(topic.name);
  }
  return names;
}

const historyKey = () => `exammentor.mastery.${userName()}`;

/** Mastery snapshots `[{t, scores: {topic: 0..100}}]`, oldest first. */
export function masteryHistory() {
  try {
    return JSON.parse(localStorage.getItem(historyKey()) || "[]");
  } catch {
    return [];
  }
}

/** Adds the learner model's present topic scores when they differ from the last snapshot. */
export function recordMastery(topics) {
  const scores = Object.fromEntries(topics.map((t) => [t.topic, t.score]));
  const history = masteryHistory();
  if (!topics.length) return history;
  const last = history.at(-1);
  if (last && JSON.stringify(last.scores) === JSON.stringify(scores)) return history;
  history.push({ t: Date.now(), scores });
  localStorage.setItem(historyKey(), JSON.stringify(history.slice(-50)));
  return history;
}
