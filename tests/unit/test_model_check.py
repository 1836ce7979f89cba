"""``exammentor model check`` against the scripted model server, made to lack one capability
at a time, and once against the embedded model (marker ``llm``)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import structlog

from exammentor.llm.check import (
    EMBEDDED_BASE_URL,
    FALLBACKS,
    ModelReport,
    check_model,
    render,
    solid_png,
)
from exammentor.ops.cli import build_parser, main
from exammentor.settings import LLMSettings
from tests.fakes.scripted_openai import (
    MODEL,
    Content,
    Reply,
    ScriptedOpenAI,
    Status,
    Stream,
    valid_json,
)

Server = Callable[[dict[str, Any]], Reply]


def has_image(body: dict[str, Any]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(part.get("type") == "image_url" for part in m["content"])
        for m in body.get("messages", [])
    )


def server(
    *,
    chat: bool = True,
    json_schema: bool = True,
    streaming: bool = True,
    vision: str | None = "Red.",
) -> Server:
    """A model server with the given capabilities; ``vision`` is what it says about an image
    (None: it refuses images, as llama.cpp without a projector does)."""

    def reply(body: dict[str, Any]) -> Reply:
        if not chat:
            return Status(503, message="model not loaded")
        if has_image(body):
            if vision is None:
                return Status(500, message="image input is not supported")
            return Content(vision)
        if body.get("response_format"):
            if not json_schema:
                return Status(400, message="response_format is not supported")
            return valid_json({"answer": "yes"})
        if body.get("stream"):
            if not streaming:
                return Stream(["One, two"], cut_after=0)
            return Stream(["One, ", "two, ", "three."])
        return Content("OK")

    return reply


@pytest.fixture
async def fake() -> AsyncIterator[ScriptedOpenAI]:
    async with ScriptedOpenAI() as scripted:
        yield scripted


async def check(fake: ScriptedOpenAI, reply: Server) -> ModelReport:
    fake.set_default(reply)
    return await check_model(LLMSettings(base_url=fake.base_url, model=MODEL), timeout_s=5)


def results(report: ModelReport) -> dict[str, bool]:
    return {r.name: r.ok for r in report.results}


async def test_an_endpoint_that_can_do_everything_passes_with_one_call_each(
    fake: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXAMMENTOR_LLM_VISION", raising=False)
    monkeypatch.delenv("EXAMMENTOR_VISION_MODEL", raising=False)
    report = await check(fake, server())
    assert results(report) == {"chat": True, "json_schema": True, "streaming": True, "vision": True}
    bodies = [r.body for r in fake.chat_requests]
    assert len(bodies) == 4  # no retries, no repair rounds
    assert [b["response_format"]["type"] for b in bodies if "response_format" in b] == [
        "json_schema"
    ]
    assert sum(bool(b.get("stream")) for b in bodies) == 1
    assert sum(has_image(b) for b in bodies) == 1
    streamed = next(r for r in report.results if r.name == "streaming")
    assert streamed.detail.startswith("in 3 deltas")
    assert streamed.first_delta_ms is not None
    assert all(r.latency_ms > 0 for r in report.results)
    # The model can see but the image routes are off: say how to open them.
    assert report.fallbacks() == [
        "vision: the model can see; to open the image routes set "
        "EXAMMENTOR_LLM_VISION=true (tutor: /api/tutor/explain-image, /api/describe-image), "
        "EXAMMENTOR_VISION_MODEL=true (quiz: /api/quiz/generate-from-image)"
    ]
    monkeypatch.setenv("EXAMMENTOR_LLM_VISION", "true")
    monkeypatch.setenv("EXAMMENTOR_VISION_MODEL", "1")
    assert (await check(fake, server())).fallbacks() == []


@pytest.mark.parametrize(
    ("lacking", "failed"),
    [
        ({"json_schema": False}, "json_schema"),
        ({"streaming": False}, "streaming"),
        ({"vision": None}, "vision"),
    ],
)
async def test_a_missing_capability_is_reported_with_what_falls_back(
    fake: ScriptedOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    lacking: dict[str, Any],
    failed: str,
) -> None:
    monkeypatch.delenv("EXAMMENTOR_LLM_VISION", raising=False)
    monkeypatch.delenv("EXAMMENTOR_VISION_MODEL", raising=False)
    report = await check(fake, server(**lacking))
    assert [name for name, ok in results(report).items() if not ok] == [failed]
    assert report.chat_works
    assert f"{failed}: {FALLBACKS[failed]}" in report.fallbacks()  # type: ignore[index]
    lines = render(report)
    assert any(line.split()[:2] == [failed, "FAILED"] for line in lines)


async def test_an_image_the_model_ignores_is_not_vision(
    fake: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMMENTOR_LLM_VISION", "true")
    monkeypatch.delenv("EXAMMENTOR_VISION_MODEL", raising=False)
    report = await check(fake, server(vision="It is a picture of a cat."))
    vision = next(r for r in report.results if r.name == "vision")
    assert not vision.ok
    assert "does not name its colour (red)" in vision.detail
    # A switch is on although the model cannot see: the operator is told what that does.
    assert any(
        "EXAMMENTOR_LLM_VISION is on but the model cannot see" in line
        for line in report.fallbacks()
    )


async def test_the_command_exits_0_when_chat_works_and_1_when_it_does_not(
    fake: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_MODEL", MODEL)
    monkeypatch.setenv("OPENAI_TIMEOUT_S", "5")
    fake.set_default(server(json_schema=False, streaming=False, vision=None))
    assert await_main(["model", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model {MODEL} at {fake.base_url}\n")
    assert "chat         ok" in out
    assert "what this means for the services:" in out

    fake.set_default(server(chat=False))
    assert await_main(["model", "check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["chat_works"] is False
    assert [r["ok"] for r in report["results"]] == [False] * 4
    assert report["results"][0]["detail"].startswith("HTTP 503")
    assert f"chat: {FALLBACKS['chat']}" in report["fallbacks"]


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    # main() configures logging onto the sys.stderr of the moment, which is pytest's capture
    # file here; once that closes, every later test that logs would fail on a closed file.
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def await_main(argv: list[str]) -> int:
    # main() runs its own event loop; the test's loop is busy, so run it in a thread.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(main, argv).result()


def test_the_help_states_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["model", "check", "--timeout", "30", "--json"])
    assert (args.command, args.action, args.timeout, args.json) == ("model", "check", 30.0, True)
    with pytest.raises(SystemExit) as shown:
        parser.parse_args(["model", "--help"])
    assert shown.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 when chat works, 1 when it does not" in help_text


def test_the_check_image_is_a_valid_png() -> None:
    png = solid_png((220, 20, 20), size=4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[12:16] == b"IHDR"
    assert png.endswith(b"IEND\xaeB`\x82")


@pytest.mark.llm
async def test_the_embedded_model_chats_writes_json_and_streams_but_cannot_see(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXAMMENTOR_LLM_VISION", raising=False)
    monkeypatch.delenv("EXAMMENTOR_VISION_MODEL", raising=False)
    settings = LLMSettings()
    if settings.base_url.rstrip("/") != EMBEDDED_BASE_URL:
        pytest.skip("OPENAI_BASE_URL names another endpoint")
    report = await check_model(settings)
    assert results(report) == {
        "chat": True,
        "json_schema": True,
        "streaming": True,
        "vision": False,
    }
    vision = next(r for r in report.results if r.name == "vision")
    assert "image input is not supported" in vision.detail
    assert report.fallbacks() == [f"vision: {FALLBACKS['vision']}"]
    assert render(report)[0].endswith("(the embedded server; set OPENAI_BASE_URL to use another)")
