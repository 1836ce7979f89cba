// The single-page app: a hash router over one module per page. Every page but login needs a
// token; any 401 from the gateway brings the student back to login with the reason.

import { setUnauthorizedHandler, signOut, token } from "./api.js";
import { forgetAll } from "./store.js";
import { notice } from "./ui.js";
import { loginPage } from "./pages/login.js";
import { onboardingPage } from "./pages/onboarding.js";
import { planPage } from "./pages/plan.js";
import { learnPage } from "./pages/learn.js";
import { quizPage } from "./pages/quiz.js";
import { autopilotPage } from "./pages/autopilot.js";
import { progressPage } from "./pages/progress.js";

const PAGES = {
  login: loginPage,
  onboarding: onboardingPage,
  plan: planPage,
  learn: learnPage,
  quiz: quizPage,
  autopilot: autopilotPage,
  progress: progressPage,
};

let leave = null; // what the page on screen does when the student leaves it (cancel streams)

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  return { name: path || "plan", params: new URLSearchParams(query) };
}

async function route() {
  if (leave) {
    leave();
    leave = null;
  }
  let { name, params } = parseHash();
  if (!token() && name !== "login") name = "login";
  if (!PAGES[name]) name = "plan";
  document.getElementById("nav").hidden = !token();
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.page = name;
  const cleanup = await PAGES[name](params);
  if (typeof cleanup === "function") leave = cleanup;
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

setUnauthorizedHandler(() => {
  signOut();
  forgetAll();
  notice("Your session has ended. Please log in again.", "error");
  go("#/login");
});

document.getElementById("logout").addEventListener("click", () => {
  signOut();
  forgetAll();
  notice("");
  go("#/login");
});

// The skip link moves focus without changing the hash, which names the page.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("view").focus();
});

window.addEventListener("hashchange", route);
route();
