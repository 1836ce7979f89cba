"""The image quiz: with a model that reads images (a scripted one) the image travels as an
OpenAI ``image_url`` part and every question names its ``visual_reference``; with the
embedded model, which cannot read images, both transports refuse clearly before any call.
"""

from __future__ import annotations

import base64
import dataclasses
import struct
import zlib
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc import aio

from exammentor._proto import quiz_pb2, quiz_pb2_grpc
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.settings import LLMSettings
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import ScriptedOpenAI
from tests.infra import unique_name
from tests.integration.conftest import Stack, register, start_worker
from tests.integration.test_quiz_api import CAPITALS, respond

pytestmark = pytest.mark.integration


def png_pixel() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


IMAGE = base64.b64encode(png_pixel()).decode()


@dataclasses.dataclass
class VisionStack:
    stack: Stack
    model: ScriptedOpenAI


@pytest.fixture(scope="module")
async def vision_stack(test_env: SessionEnv) -> AsyncIterator[VisionStack]:
    """A gateway and a quiz worker configured for a model that reads images, on topics of
    their own, so no other quiz worker takes these commands."""
    env = dataclasses.replace(test_env, topic_prefix=unique_name("qzi"))
    await ensure_topics(env.kafka())
    model = ScriptedOpenAI(default=respond)
    await model.__aenter__()
    gateway = Gateway(
        env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=60
        )
    )
    await gateway.start()
    llm = LLMSettings(
        base_url=model.base_url,
        model="scripted-vision",
        max_retries=1,
        repair_attempts=1,
        timeout_s=5,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    worker = await start_worker(env, "quiz", llm, vision_model=True)
    yield VisionStack(Stack(gateway, [worker]), model)
    await worker.stop()
    await gateway.stop()
    await model.__aexit__(None, None, None)


async def test_the_image_goes_to_a_vision_model_as_an_image_part(
    vision_stack: VisionStack,
) -> None:
    vision_stack.model.reset()
    async with httpx.AsyncClient(base_url=vision_stack.stack.base_url, timeout=120) as http:
        _, auth = await register(http)
        reply = await http.post(
            "/api/quiz/generate-from-image",
            json={
                "topic": "Capitals on a map",
                "image_base64": IMAGE,
                "mime_type": "image/png",
                "num_questions": 2,
                "difficulty": "easy",
            },
            headers=auth,
        )
        assert reply.status_code == 200, reply.text
        quiz = reply.json()
        assert len(quiz["questions"]) == 2
        for question in quiz["questions"]:
            assert question["visual_reference"]
            assert "correct_option_index" not in question
        parts = vision_stack.model.image_parts()
        assert parts, "the image was sent"
        assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{IMAGE}"

        # Graded by id like any stored question.
        question = quiz["questions"][0]
        right = next(i for i, o in enumerate(question["options"]) if o in {c[2] for c in CAPITALS})
        graded = await http.post(
            "/api/quiz/evaluate",
            json={"question_id": question["id"], "student_answer_index": right},
            headers=auth,
        )
        assert graded.json()["is_correct"] is True

        # The gRPC twin sends the same image part.
        vision_stack.model.reset()
        address = f"127.0.0.1:{vision_stack.stack.gateway.grpc_port}"
        async with aio.insecure_channel(address) as channel:
            over_grpc = await quiz_pb2_grpc.QuizStub(channel).GenerateQuizFromImage(
                quiz_pb2.GenerateQuizFromImageRequest(
                    topic="Capitals on a map",
                    image_base64=IMAGE,
                    mime_type="image/png",
                    num_questions=2,
                ),
                metadata=(("authorization", auth["Authorization"]),),
            )
        assert all(q.visual_reference for q in over_grpc.questions)
        assert vision_stack.model.image_parts()[0]["image_url"]["url"].endswith(IMAGE)


@pytest.mark.llm
async def test_the_embedded_model_cannot_read_images_and_both_transports_say_so(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    _, auth = await register(client)
    body = {"topic": "Cells", "image_base64": IMAGE, "mime_type": "image/png"}
    reply = await client.post("/api/quiz/generate-from-image", json=body, headers=auth)
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail["code"] == "vision_unsupported"
    assert "image_base64" in detail["message"]
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        with pytest.raises(aio.AioRpcError) as refused:
            await quiz_pb2_grpc.QuizStub(channel).GenerateQuizFromImage(
                quiz_pb2.GenerateQuizFromImageRequest(**body),
                metadata=(("authorization", auth["Authorization"]),),
            )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(refused.value.trailing_metadata() or ())["error-code"] == "vision_unsupported"
    # A bad mime type is refused by field before anything is sent.
    bad = await client.post(
        "/api/quiz/generate-from-image", json={**body, "mime_type": "image/tiff"}, headers=auth
    )
    assert bad.status_code == 422
    assert "mime_type" in bad.json()["detail"]["message"]
