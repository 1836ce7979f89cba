"""An answer given within its window is graded, never skipped, however long ``quiz.grade``
takes: the real tutor, quiz and autopilot on the scripted model, whose feedback on a wrong
answer (``quiz.feedback``, part of ``quiz.grade``) comes only after the answer window has
ended. Before the answer was stored as received first, the driver's timer recorded a skip
while the grade was on its way and the graded answer was then refused as "the run moved on".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Delay, Reply
from tests.integration.conftest import ScriptedStack, owner_connection, register, start_stack
from tests.integration.test_autopilot import assert_contiguous_once, status
from tests.integration.test_autopilot_services import (
    respond,
    right_index,
    send_answer,
    start,
    until_or_done,
)

pytestmark = pytest.mark.integration

WINDOW_S = 8
"""The answer window of this stack's runs (study time)."""
FEEDBACK_DELAY_S = 2 * WINDOW_S
"""How long the scripted model takes to write feedback on a wrong answer: past the window."""


def slow_feedback(body: dict[str, Any]) -> Reply:
    """As the services test's model, but feedback on a wrong answer comes late."""
    reply = respond(body)
    if str(body["messages"][0]["content"]).startswith("Give a student short feedback"):
        assert isinstance(reply, Content)
        return Delay(FEEDBACK_DELAY_S, reply)
    return reply


@pytest.fixture(scope="module")
async def slow(test_env: SessionEnv) -> AsyncIterator[ScriptedStack]:
    """Tutor, quiz and an autopilot replica whose runs give each answer ``WINDOW_S``."""
    async with start_stack(
        test_env,
        ["tutor", "quiz", "autopilot"],
        model=slow_feedback,
        llm={"timeout_s": FEEDBACK_DELAY_S * 3},
        gateway={"request_timeout_s": 120},
        workers={
            "autopilot": {
                "lease_ttl_s": 2.0,
                "lease_poll_s": 0.2,
                "lesson_words": 80,
                "lessons_per_topic": 1,
                "questions_per_quiz": 2,
                "answer_timeout_seconds": WINDOW_S,
            }
        },
    ) as stack:
        yield ScriptedStack(stack)


async def test_an_answer_given_in_time_is_graded_although_grading_outlasts_the_window(
    slow: ScriptedStack,
) -> None:
    async with httpx.AsyncClient(base_url=slow.stack.base_url, timeout=120) as http:
        user_id, auth = await register(http)
        session = await start(http, auth)

        found = await until_or_done(http, auth, session, timeout_s=120)
        assert found["status"] == "running", found["end_reason"]
        question = found["current_question"]
        window_end = dt.datetime.fromisoformat(found["answer_deadline"])
        wrong = (right_index(question) + 1) % 4
        # The reply comes once the answer is graded, after the window: the grade waited.
        await send_answer(http, auth, session, question, wrong)

        found = await status(http, auth, session)
        steps = found["steps"]
        assert_contiguous_once(steps)
        settled = [
            s
            for s in steps
            if s["action"] in ("answer", "skip") and s["data"].get("question_id") == question["id"]
        ]
        assert [s["action"] for s in settled] == ["answer"], settled
        (step,) = settled
        assert step["data"]["answer_index"] == wrong
        assert step["data"]["correct"] is False
        assert step["data"]["correct_option_index"] == right_index(question)
        # Recorded after the window had ended: the timer did not take the question.
        assert dt.datetime.fromisoformat(step["timestamp"]) > window_end
        assert step["duration_ms"] < WINDOW_S * 1000

        # The next question gets a window of its own and the run goes on.
        following = await until_or_done(
            http,
            auth,
            session,
            lambda s: s["awaiting_input"] and s["current_question"]["id"] != question["id"],
            timeout_s=120,
        )
        assert following["status"] == "running", following["end_reason"]
        stopped = await http.post(f"/api/autopilot/stop/{session}", headers=auth)
        assert stopped.status_code == 200, stopped.text

    async with owner_connection(slow.env) as conn:
        graded = await conn.fetch(
            "SELECT question_id, outcome FROM quiz_answers WHERE user_id = $1::uuid", user_id
        )
        usage = await conn.fetchval(
            "SELECT count(*) FROM llm_usage WHERE user_id = $1::uuid AND purpose = 'quiz.feedback'",
            user_id,
        )
    assert {r["question_id"]: r["outcome"] for r in graded} == {question["id"]: "wrong"}
    assert usage == 1  # the slow feedback was paid for once


async def test_the_answer_window_still_skips_a_question_nobody_answers(
    slow: ScriptedStack,
) -> None:
    async with httpx.AsyncClient(base_url=slow.stack.base_url, timeout=120) as http:
        _, auth = await register(http)
        session = await start(http, auth)
        found = await until_or_done(http, auth, session, timeout_s=120)
        question = found["current_question"]
        found = await until_or_done(
            http,
            auth,
            session,
            lambda s: any(
                st["action"] == "skip" and st["data"].get("question_id") == question["id"]
                for st in s["steps"]
            ),
            timeout_s=120,
        )
        assert found["status"] == "running", found["end_reason"]
        (skip,) = [
            s
            for s in found["steps"]
            if s["action"] == "skip" and s["data"]["question_id"] == question["id"]
        ]
        assert skip["data"]["answer_index"] is None
        assert "ungraded" not in skip["data"]
        assert skip["reasoning"].endswith(
            f"no answer within {WINDOW_S} s of study time; skipped, not graded"
        )
        stopped = await http.post(f"/api/autopilot/stop/{session}", headers=auth)
        assert stopped.status_code == 200, stopped.text
