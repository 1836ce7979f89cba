"""The student web app in a real headless Chromium, against the real stack.

A gateway and the four workers of their own, on a topic prefix of their own, answering from
the scripted model (its text is known, so the pages' text can be asserted; every question is
a sum, so the test can answer right or wrong on purpose). Chromium is Debian's, driven by
Playwright; the tests wait on the page's own DOM, never on time. Each page is photographed at
desktop and at phone width into ``.run/screenshots/``, or into the folder
``EXAMMENTOR_SCREENSHOTS`` names (``EXAMMENTOR_SCREENSHOTS=docs/web`` refreshes the README's
pictures), so a test run leaves the working tree as it found it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from services.gateway.settings import WEB_BUILD
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Delay, Reply, Stream
from tests.infra import unique_name
from tests.integration.conftest import ScriptedStack, start_stack
from tests.integration.test_autopilot_services import respond as respond_to_quiz_and_lesson
from tests.integration.test_tutor_api import pdf_of

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TUTOR = "You are a patient, precise tutor"
LONG_TOPIC = "Rotational Dynamics"
IMPATIENT_WAIT_S = 1.0
"""How long the second gateway of the slow-answer test waits for a result before its 202."""
NO_QUIZ_TOPIC = "Fluid Mechanics"
"""The model never writes a valid question about it."""
SLOW_QUIZ_TOPIC = "Optics"
"""The model writes its quiz after the impatient gateway has stopped waiting."""


RANGE_MORE = (
    "It grows with the square of the launch speed and is largest at forty five degrees, "
    "because the sine of twice that angle is one. Air resistance shortens it in practice, "
    "so real shots land nearer than this ideal formula predicts for a flat field."
)


def respond(body: dict[str, Any]) -> Reply:
    """The tutor's answers cite the page their keyword is on; one topic streams slowly, so a
    student can stop it half way; quizzes, feedback and diagnoses are sums."""
    system = str(body["messages"][0]["content"])
    last = str(body["messages"][-1]["content"])
    if system.startswith(TUTOR) and body.get("stream"):
        if LONG_TOPIC in last:
            return Stream([f"word{k} " for k in range(400)], chunk_delay_s=0.1)
        for line in last.splitlines():
            if "projectile range" in line and line.startswith("[p. "):
                label = line.split("]")[0] + "]"
                return Stream(
                    [
                        "## Range\n\n",
                        f"As the notes say {label}, ",
                        "the range is $R = \\frac{u^2 \\sin 2\\theta}{g}$. ",
                        # Longer than the tutor's hold-back window (24 words), so the page
                        # receives the answer in several pieces, as a student sees it stream.
                        *(f"{w} " for w in RANGE_MORE.split()),
                    ]
                )
        return Stream(["## Idea\n\n", "Velocity ", "is ", "the ", "rate ", "of ", "change."])
    if system.startswith("Write multiple-choice quiz questions") and NO_QUIZ_TOPIC in last:
        return Content("I cannot write questions about that.")
    if system.startswith("Write multiple-choice quiz questions") and SLOW_QUIZ_TOPIC in last:
        then = respond_to_quiz_and_lesson(body)
        assert isinstance(then, Content)
        return Delay(IMPATIENT_WAIT_S * 2, then)
    return respond_to_quiz_and_lesson(body)


WebStack = ScriptedStack
"""This module's stack: :class:`~tests.integration.conftest.ScriptedStack`."""


@pytest.fixture(scope="module")
async def web(test_env: SessionEnv) -> AsyncIterator[WebStack]:
    """Every service on a database and topic prefix of the module's own: an autopilot
    replica claims the runs of its whole database, so the session stack's (the embedded
    model) must never carry the page's autopilot run (in a full run it did, and asked the
    embedded model the quiz)."""
    assert (WEB_BUILD / "index.html").is_file(), "build the web app first: make setup"
    async with start_stack(
        test_env,
        model=respond,
        llm={"timeout_s": 10},
        gateway={"request_timeout_s": 60},
        workers={"autopilot": {"lease_ttl_s": 2.0, "lease_poll_s": 0.2, "lesson_words": 80}},
    ) as stack:
        yield WebStack(stack)


# ---- the browser -----------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
EXPECTED_CONSOLE = re.compile(r"status of (401|413|422)\b")
"""The refusals the tests ask for on purpose (Chromium logs every failed fetch)."""
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("EXAMMENTOR_SCREENSHOTS", ".run/screenshots")
SUM = re.compile(r"what is (\d+) \+ (\d+)\?")
SYLLABUS = "- Kinematics\n- Projectile Motion\n- Newton's Laws of Motion\n- Work, Energy and Power"
EXPECT_TIMEOUT_MS = 90_000
"""How long a page may take to show what it is waiting for (the whole pipeline, under load)."""
expect.set_options(timeout=EXPECT_TIMEOUT_MS)
NOTES_PDF = pdf_of(
    [
        "Chapter one. Displacement is the change of position of a body.",
        "Chapter two. Velocity is the rate of change of displacement.",
        "Chapter three. The projectile range equals u squared times sin two theta over g.",
    ]
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield found
        await found.close()


@pytest.fixture
async def page(browser: Browser, web: WebStack) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=DESKTOP, base_url=web.stack.base_url)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    found = await context.new_page()
    errors: list[str] = []
    found.on("pageerror", lambda exc: errors.append(str(exc)))
    # A console error is a failed load, a script error or a Content-Security-Policy refusal.
    console: list[str] = []
    found.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    # Nothing may load from another host: the app works offline on a self-hosted box.
    elsewhere: list[str] = []
    found.on(
        "request",
        lambda r: elsewhere.append(r.url) if not r.url.startswith(web.stack.base_url) else None,
    )
    yield found
    await context.close()
    assert errors == [], errors
    assert [m for m in console if not EXPECTED_CONSOLE.search(m)] == []
    assert [u for u in elsewhere if not u.startswith(("blob:", "data:"))] == []


async def screenshot(page: Page, name: str, at: tuple[str, str] | None = None) -> None:
    """The page at desktop and at phone width (from the top, or from the element ``at`` names
    for each width), as small palette PNGs in ``SHOTS``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for k, (size, suffix) in enumerate(((DESKTOP, "desktop"), (PHONE, "phone"))):
        await page.set_viewport_size(size)
        await page.evaluate("window.scrollTo(0, 0)")
        if at is not None:
            await page.locator(at[k]).evaluate("e => e.scrollIntoView({block: 'start'})")
        raw = await page.screenshot()
        image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=64)
        image.save(SHOTS / f"{name}-{suffix}.png", optimize=True)
    await page.set_viewport_size(DESKTOP)


def right_option(question: str, options: list[str]) -> int:
    """The correct option of a scripted sum question, worked out from its text."""
    a, b = (int(x) for x in SUM.search(question).groups())  # type: ignore[union-attr]
    return options.index(str(a + b))


async def options_of(fieldset: Locator) -> tuple[str, list[str]]:
    legend = await fieldset.locator("legend").inner_text()
    return legend, await fieldset.locator("label").all_inner_texts()


async def test_a_students_first_hour(page: Page, web: WebStack) -> None:
    # Sign up: the app is served on the gateway's own origin, at /app/.
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/app/#/login$|/app/$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Study for your exam")
    await expect(page.get_by_role("navigation", name="Pages")).to_be_hidden()
    await screenshot(page, "login")
    await page.get_by_label("Name", exact=True).fill(unique_name("ada"))
    await page.get_by_label("Password", exact=True).fill("pass-word-1")
    await page.get_by_role("button", name="Sign up", exact=True).click()

    # Onboarding: the plan's stages appear as they stream, then the calendar opens.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Plan your preparation")
    await page.get_by_label("Exam", exact=True).fill("JEE")
    await page.get_by_label("Days until the exam", exact=True).fill("10")
    await page.get_by_label("Your goal", exact=True).fill("Master mechanics for JEE Main")
    await page.get_by_label("Syllabus", exact=True).fill(SYLLABUS)
    await page.get_by_role("button", name="Make my plan", exact=True).click()
    await expect(page.locator("#open-plan")).to_be_visible()
    kinds = await page.locator("#stages li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert kinds[0] == "status", kinds
    assert kinds[-1] == "complete", kinds
    assert kinds.index("draft") < kinds.index("verification") < kinds.index("complete"), kinds
    await screenshot(page, "onboarding", at=("#goal-field", "#planning"))

    # The calendar: a card per day, learning, spaced reviews, the revision day, the verdict.
    await page.locator("#open-plan").click()
    await expect(page.locator("#calendar > li.day")).to_have_count(10)
    await expect(page.locator("#calendar .day.revision")).not_to_have_count(0)
    await expect(page.locator("#calendar .topic.review")).not_to_have_count(0)
    await expect(page.locator("#verdict")).to_contain_text("Verified")
    await expect(page.locator("#verdict")).to_contain_text("revision day included")
    # A part the plan has not (no topic left out) is left out, not written as "null".
    await expect(page.locator("#view")).not_to_contain_text(
        re.compile(r"\bnull\b"), use_inner_text=True
    )
    await screenshot(page, "plan")

    # Progress before any answer: nothing plotted yet.
    await page.get_by_role("link", name="Progress", exact=True).click()
    await expect(page.locator("#mastery-plot")).to_have_attribute("data-topics", "0")

    # Learn: a topic from the calendar, a PDF of notes, an answer streamed that cites page 3.
    await page.get_by_role("link", name="Plan", exact=True).click()
    await page.locator("#calendar a", has_text="Projectile Motion").first.click()
    await expect(page.get_by_label("Topic", exact=True)).to_have_value("Projectile Motion")
    await page.locator("#pdf").set_input_files(
        files=[{"name": "kinematics.pdf", "mimeType": "application/pdf", "buffer": NOTES_PDF}]
    )
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.locator("#upload-state")).to_contain_text("kinematics: 3 pages read")
    await expect(page.locator("#materials li[data-material] input")).to_be_checked()
    await page.get_by_label("Your question", exact=True).fill("What is the projectile range?")
    await page.get_by_role("button", name="Explain", exact=True).click()
    await expect(page.locator("#answer")).to_have_attribute("data-state", "done")
    assert int(await page.locator("#answer").get_attribute("data-tokens") or 0) > 1
    await expect(page.locator("#answer h2")).to_have_text("Range")
    await expect(page.locator("#answer .katex")).to_have_count(1)  # the LaTeX, rendered
    cited = page.locator('#citations li[data-page="3"]')
    await expect(cited).to_have_text("Page 3 of kinematics")
    assert (await cited.locator("a").get_attribute("href") or "").endswith("#page=3")
    await expect(page.locator("#chat")).to_contain_text("Nothing earlier in this topic.")
    # The tutor remembers the topic's chat: the next answer's prompt holds the first one,
    # and the page lists the first exchange under the new answer.
    await page.get_by_label("Your question", exact=True).fill("And when is it largest?")
    await page.get_by_role("button", name="Explain", exact=True).click()
    await expect(page.locator("#answer")).to_have_attribute("data-state", "done")
    await expect(page.locator("#chat .turn.ai")).to_have_count(1)
    await expect(page.locator("#chat .turn.user")).to_contain_text("What is the projectile range?")
    prompt = json.dumps(web.model.chat_requests[-1].body["messages"])
    assert "As the notes say [p. 3]" in prompt
    await screenshot(page, "learn")

    # Stop half way: the request is cancelled, the model stops, the partial answer stays.
    await page.get_by_label("Topic", exact=True).fill(LONG_TOPIC)
    await page.get_by_label("Your question", exact=True).fill("")
    await page.get_by_role("button", name="Explain", exact=True).click()
    await expect(page.locator("#answer")).to_contain_text("word2")
    await page.get_by_role("button", name="Stop", exact=True).click()
    await expect(page.locator("#answer")).to_have_attribute("data-state", "stopped")
    await expect(page.locator("#stream-state")).to_contain_text("Stopped")
    assert "word399" not in await page.locator("#answer").inner_text()
    async with asyncio.timeout(30):
        while not web.model.streams_closed_early:
            await asyncio.sleep(0.05)

    # Quiz: no answer in the page before grading; the wrong one diagnosed, then redeemed.
    await page.get_by_role("link", name="Quiz", exact=True).click()
    await page.get_by_label("Topic", exact=True).fill("Kinematics")
    await page.get_by_role("button", name="New quiz", exact=True).click()
    questions = page.locator("#quiz fieldset.question")
    await expect(questions).to_have_count(3)
    await expect(page.locator("#quiz")).not_to_contain_text("The answer is")
    for k in range(3):
        legend, options = await options_of(questions.nth(k))
        right = right_option(legend, options)
        choice = (right + 1) % len(options) if k == 0 else right
        await questions.nth(k).get_by_label(options[choice], exact=True).check()
    await page.get_by_role("button", name="Check my answers", exact=True).click()
    await expect(page.locator("#quiz")).to_have_attribute("data-graded", "true")
    await expect(page.locator("#quiz-summary")).to_have_text("2 of 3 answered right.")
    await expect(questions.nth(0)).to_have_attribute("data-result", "wrong")
    diagnosis = questions.nth(0).locator(".diagnosis")
    await expect(diagnosis.locator(".confusion")).to_have_text(
        "Counts the first number as one of the steps."
    )
    redemption = diagnosis.locator("fieldset.question")
    await redemption.get_by_label("7", exact=True).check()
    await diagnosis.get_by_role("button", name="Check", exact=True).click()
    await expect(redemption).to_have_attribute("data-result", "right")
    await screenshot(page, "quiz")

    # Progress: the plot now has the quizzed topic, and the misconception is redeemed.
    await page.get_by_role("link", name="Progress", exact=True).click()
    plot = page.locator("#mastery-plot")
    await expect(plot).to_have_attribute("data-topics", "1")
    await expect(plot.locator('.series[data-topic="Kinematics"] circle')).not_to_have_count(0)
    await expect(page.locator('#misconceptions [data-state="redeemed"] li')).to_have_count(1)
    await expect(page.locator("#coverage")).to_contain_text("1 of")
    snapshots = int(await plot.get_attribute("data-snapshots") or 0)

    # Autopilot: started on the plan, its question answered in place, paused, resumed, stopped.
    await page.get_by_role("link", name="Autopilot", exact=True).click()
    await page.get_by_label("Study time (minutes)", exact=True).fill("10")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#ap-status")).to_have_attribute("data-status", "running")
    question = page.locator("#ap-answer fieldset")
    await expect(question).to_be_visible()
    await expect(page.locator('#ap-steps li[data-action="lesson"]')).not_to_have_count(0)
    legend, options = await options_of(question)
    await question.get_by_label(options[right_option(legend, options)], exact=True).check()
    await page.locator("#ap-answer").get_by_role("button", name="Answer", exact=True).click()
    await expect(page.locator('#ap-steps li[data-action="answer"]').first).to_contain_text("Right.")
    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(page.locator("#ap-status")).to_have_attribute("data-status", "paused")
    await expect(page.locator("#ap-remaining")).to_have_text(re.compile(r"^\d+:\d\d left$"))
    await screenshot(page, "autopilot")
    await page.get_by_role("button", name="Resume", exact=True).click()
    await expect(page.locator("#ap-status")).to_have_attribute("data-status", "running")
    await page.get_by_role("button", name="Stop", exact=True).click()
    await expect(page.locator("#ap-status")).to_have_attribute("data-status", "stopped")
    await expect(page.locator('#ap-steps li[data-action="stop"]')).to_have_count(1)

    # Progress again: the autopilot's graded answer moved the plot.
    await page.get_by_role("link", name="Progress", exact=True).click()
    await expect(page.locator("#mastery-plot")).not_to_have_attribute(
        "data-snapshots", str(snapshots)
    )
    await screenshot(page, "progress")


async def test_errors_are_shown_in_words(page: Page) -> None:
    await page.goto("/app/")
    # By keyboard alone: the name field has the focus, Tab reaches the password, Enter logs in.
    await expect(page.get_by_label("Name", exact=True)).to_be_focused()
    await page.keyboard.type(unique_name("nobody"))
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password", exact=True)).to_be_focused()
    await page.keyboard.type("wrong-password")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("Please log in")
    # A password the gateway refuses: the field is named.
    await page.get_by_label("Password", exact=True).fill("short")
    await page.get_by_role("button", name="Sign up", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("password:")
    await page.get_by_label("Password", exact=True).fill("pass-word-1")
    await page.get_by_role("button", name="Sign up", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Plan your preparation")
    # A goal the exam does not cover: the planner asks instead of guessing, and an option
    # fills the goal in.
    await page.get_by_label("Exam", exact=True).fill("NEET")
    await page.get_by_label("Your goal", exact=True).fill("NEET maths")
    await page.get_by_role("button", name="Make my plan", exact=True).click()
    clarification = page.locator("#clarification")
    await expect(clarification).to_contain_text("has no Mathematics")
    option = clarification.get_by_role("button").first
    chosen = await option.inner_text()
    await option.click()
    await expect(page.get_by_label("Your goal", exact=True)).to_have_value(chosen)
    # A quiz the model cannot write says why, and that nothing was stored.
    await page.goto(f"/app/#/quiz?topic={NO_QUIZ_TOPIC}")
    await page.get_by_role("button", name="New quiz", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("nothing was stored")
    # A PDF over the limit is refused with the limit, before it is sent.
    await page.goto("/app/#/learn")
    await page.locator("#pdf").set_input_files(
        files=[{"name": "big.pdf", "mimeType": "application/pdf", "buffer": bytes(11 << 20)}]
    )
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("the limit is 10 MB")
    # A token the gateway no longer accepts leads back to login, saying why.
    await page.evaluate("sessionStorage.setItem('exammentor.token', 'expired')")
    await page.goto("/app/#/progress")
    await expect(page.locator("#notice")).to_have_text(
        "Your session has ended. Please log in again."
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text("Study for your exam")


async def test_an_answer_slower_than_the_gateway_waits_still_arrives(
    browser: Browser, web: WebStack
) -> None:
    # A gateway that stops waiting after a second: the quiz comes as a 202, and the page
    # follows the stored request to its result instead of failing.
    async with start_stack(
        web.env, [], own_topics=False, gateway={"request_timeout_s": IMPATIENT_WAIT_S}
    ) as impatient:
        base = impatient.base_url
        context = await browser.new_context(viewport=DESKTOP, base_url=base)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        page = await context.new_page()
        await page.goto("/app/")
        await page.get_by_label("Name", exact=True).fill(unique_name("slow"))
        await page.get_by_label("Password", exact=True).fill("pass-word-1")
        await page.get_by_role("button", name="Sign up", exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Plan your preparation")
        await page.goto(f"/app/#/quiz?topic={SLOW_QUIZ_TOPIC}")
        await page.get_by_role("button", name="New quiz", exact=True).click()
        await expect(page.locator("#quiz fieldset.question")).to_have_count(3)
        await context.close()
