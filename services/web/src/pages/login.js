// Sign up and log in: one form, two buttons; the token is kept for this browser tab.

import { describeError, post, signIn } from "../api.js";
import { go } from "../app.js";
import { latestPlan } from "../store.js";
import { errorBox, field, h, notice, show } from "../ui.js";

export function loginPage() {
  const name = h("input", { name: "name", autocomplete: "username", required: true });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const status = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card narrow", id: "login-form" },
    field("Name", name),
    field("Password", password, "At least 8 characters."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", value: "login", class: "primary" }, "Log in"),
      h("button", { type: "submit", value: "register", id: "register" }, "Sign up"),
    ),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter?.value || "login";
    status.replaceChildren();
    try {
      const body = { name: name.value.trim(), password: password.value };
      const answer = await post(`/api/users/${action}`, body);
      signIn(answer.access_token, body.name);
      notice("");
      const plan = action === "login" ? await latestPlan({ refresh: true }) : null;
      go(plan ? "#/plan" : "#/onboarding");
    } catch (err) {
      status.replaceChildren(errorBox(describeError(err)));
    }
  });
  show(
    "Study for your exam",
    h("p", { class: "lead" }, "A verified day-by-day plan, a tutor that cites your notes, quizzes aimed at your mistakes."),
    form,
  );
  name.focus();
}
