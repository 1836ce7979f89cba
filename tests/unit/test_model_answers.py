"""The kit's weak-model hygiene, shared by every service that calls a model."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from exammentor.llm.answers import (
    ANSWER_CONFIG,
    ModelRun,
    check_mostly_usable,
    clean,
    clip,
    is_degenerate,
    keyed_schema,
    token_budget,
)
from exammentor.llm.messages import LLMInvalidOutput, LLMUnavailable


def test_clean_and_clip_keep_one_tidy_line() -> None:
    assert clean('  "Work,\x00 energy\n and power"  ') == "Work, energy and power"
    assert clip("a " * 10, 8) == "a a a a\u2026"
    assert len(clip("word " * 100, 20)) == 20
    assert clip("short", 20) == "short"


def test_looping_text_is_degenerate_and_ordinary_text_is_not() -> None:
    assert is_degenerate("the laws of motion the laws of motion the laws of motion")
    assert not is_degenerate("Kinematics describes motion without asking what causes it.")
    assert not is_degenerate("again again again")  # too short to judge


def test_keyed_schemas_require_every_key_and_forbid_others() -> None:
    class Themes(BaseModel):
        model_config = ANSWER_CONFIG

    schema = keyed_schema("Themes3", Themes, "d", 3)
    assert set(schema.model_fields) == {"d1", "d2", "d3"}
    assert "description" not in schema.model_json_schema()
    with pytest.raises(ValidationError):
        schema.model_validate({"d1": "a", "d2": "b"})
    with pytest.raises(ValidationError):
        schema.model_validate({"d1": "a", "d2": "b", "d3": "c", "d4": "d"})
    assert token_budget(16, 3) == 24 + 48
    assert token_budget(16, 0) == 24 + 16


def test_an_answer_mostly_unusable_is_sent_back_for_repair() -> None:
    check_mostly_usable(["t2: empty"], usable=2, total=3)
    with pytest.raises(ValueError, match="t1: empty; t2: loops"):
        check_mostly_usable(["t1: empty", "t2: loops"], usable=1, total=3)


class _Answer(BaseModel):
    text: str


class _FailingModel:
    """A model client whose every call fails, counting the calls."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def structured(self, **_: object) -> _Answer:
        self.calls += 1
        raise self.error


async def test_a_model_that_failed_is_not_asked_again_in_the_same_run() -> None:
    model = _FailingModel(LLMUnavailable("connection refused", purpose="first"))
    run = ModelRun(model)  # type: ignore[arg-type]
    assert await run.ask("first", [], _Answer, max_tokens=10) is None
    assert await run.ask("second", [], _Answer, max_tokens=10) is None
    assert model.calls == 1
    assert run.status == {"first": "unavailable", "second": "skipped"}


async def test_an_unusable_answer_does_not_stop_the_next_call() -> None:
    model = _FailingModel(LLMInvalidOutput("bad", purpose="first", errors=["x"], output="{"))
    run = ModelRun(model)  # type: ignore[arg-type]
    await run.ask("first", [], _Answer, max_tokens=10)
    await run.ask("second", [], _Answer, max_tokens=10)
    assert model.calls == 2
    assert run.status == {"first": "invalid", "second": "invalid"}
    assert (await ModelRun(None).ask("x", [], _Answer, max_tokens=1)) is None


async def test_an_answer_that_failed_only_the_check_is_kept_when_the_caller_asks() -> None:
    # The quiz keeps the valid questions of an answer whose screen failed; others drop it.
    failed_check = LLMInvalidOutput(
        "bad", purpose="q", errors=["too short"], output='```json\n{"text": "kept"}\n```'
    )
    run = ModelRun(_FailingModel(failed_check))  # type: ignore[arg-type]
    assert await run.ask("q", [], _Answer, max_tokens=10) is None
    kept = await run.ask("q", [], _Answer, max_tokens=10, keep_unchecked=True)
    assert kept == _Answer(text="kept")
    assert run.status == {"q": "invalid"}
    broken = _FailingModel(LLMInvalidOutput("bad", purpose="q", errors=["x"], output='{"t": 1}'))
    run = ModelRun(broken)  # type: ignore[arg-type]
    assert await run.ask("q", [], _Answer, max_tokens=10, keep_unchecked=True) is None
    assert run.status == {"q": "invalid"}
