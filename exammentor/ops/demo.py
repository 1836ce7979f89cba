"""``exammentor demo``: a real study flow through a running gateway, printed for people.

Registers a student, logs in, asks for a verified study plan of a pasted NEET biology
syllabus and follows its stages as they stream (NDJSON), then fetches the stored result
by request id, as a client that lost its stream would. Then it uploads a three-page handout
(a PDF when fpdf2 is installed, as ``make demo``'s dev install has it; its text otherwise),
streams a short tutor answer about it with the pages it cites, and asks a three-question
quiz on the handout. Each says who wrote it: the model, or extracts of the handout where the
model's text failed the checks (on the embedded model that is common, and the point).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import uuid
from typing import Any

import httpx

SYLLABUS = """NEET Biology (revision list)
- Cell Structure and Function
- Plant Physiology
- Human Physiology
- Genetics and Evolution
- Ecology and Environment
"""


HANDOUT_TITLE = "Photosynthesis handout"
HANDOUT_PAGES = (
    "Cell biology. The cell membrane is a lipid bilayer that controls what enters and leaves "
    "the cell. The nucleus holds the DNA. Mitochondria release energy from glucose in "
    "cellular respiration.",
    "Genetics. Mendel crossed pea plants and found dominant and recessive traits. A gene is a "
    "length of DNA that codes for one protein. Alleles are different forms of the same gene.",
    "Photosynthesis. Chlorophyll in the chloroplast absorbs light energy. The light reactions "
    "split water and release oxygen. The Calvin cycle fixes carbon dioxide into glucose. "
    "Stomata let carbon dioxide into the leaf.",
)
"""Three pages; the question is about page 3."""
QUESTION = "What does chlorophyll do in photosynthesis, and where does the oxygen come from?"
WAIT_S = 900.0
"""How long the demo follows one request (the embedded model is slow on two cores)."""


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _print_plan(plan: dict[str, Any]) -> None:
    _say(f"  {plan['exam_name']}: {plan['total_days']} days")
    _say(f"  {plan['overview']}")
    for day in plan["schedule"]:
        topics = ", ".join(
            f"{t['name']} ({t.get('kind', 'learn')}, {t.get('hours') or '?'} h)"
            for t in day["topics"]
        )
        _say(f"  day {day['day']:>2} [{day['estimated_hours']:>4} h] {day['theme']}")
        if topics:
            _say(f"         {topics}")
    _say(f"  critical topics: {', '.join(plan['critical_topics'])}")


async def run_demo(gateway: str) -> int:
    """Runs the flow; returns the process exit code."""
    async with httpx.AsyncClient(base_url=gateway, timeout=600) as http:
        name = f"demo-student-{uuid.uuid4().hex[:6]}"
        password = "demo-password-1"  # noqa: S105 - a throwaway demo account
        _say(f"1. register {name}")
        reply = await http.post("/api/users/register", json={"name": name, "password": password})
        reply.raise_for_status()
        _say("2. log in (argon2 password check, JWT bearer token)")
        reply = await http.post("/api/users/login", json={"name": name, "password": password})
        reply.raise_for_status()
        auth = {"Authorization": f"Bearer {reply.json()['access_token']}"}

        body = {
            "syllabus_text": SYLLABUS,
            "exam_type": "NEET",
            "goal": "Prepare NEET biology in ten days, genetics needs extra care",
            "days": 10,
            "hours_per_day": 6,
        }
        _say("3. ask for a verified study plan; stages stream as they happen:")
        request_id = None
        final: dict[str, Any] | None = None
        async with http.stream(
            "POST", "/api/plan/stream-verified", json=body, headers=auth
        ) as stream:
            if stream.status_code != 200:
                await stream.aread()
                _say(f"   refused: {stream.status_code} {stream.text}")
                return 1
            request_id = stream.headers.get("X-Request-Id")
            async for line in stream.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                if kind == "draft":
                    _say(f"   draft v{event.get('version')}")
                elif kind == "verification":
                    result = event.get("result", {})
                    _say(
                        f"   verification: valid={result.get('is_valid')} "
                        f"coverage={result.get('coverage_percent')}% "
                        f"overloaded_days={result.get('overloaded_days')}"
                    )
                elif kind == "complete":
                    final = event["final_result"]
                    _say("   complete")
                elif kind == "error":
                    _say(f"   error: {event}")
                    return 1
                else:
                    _say(f"   {kind}: {event.get('message', '')}")
        if final is None:
            _say("   the stream ended without a result")
            return 1
        plan = final.get("final_plan")
        if plan:
            _say("4. the plan:")
            _print_plan(plan)
        if request_id:
            reply = await http.get(f"/api/requests/{request_id}", headers=auth)
            reply.raise_for_status()
            stored = reply.json()
            _say(f"5. fetched request {request_id} again by id: status={stored['status']}")
        _say("   the flow went gateway -> Kafka -> planner -> Postgres -> gRPC -> you.")
        material_id = await _upload_handout(http, auth)
        if material_id is None:
            return 1
        if not await _tutor_answer(http, auth, material_id):
            return 1
        if not await _quiz(http, auth, material_id):
            return 1
        _say("done.")
        return 0


def _handout() -> dict[str, str]:
    """The handout as a PDF (fpdf2, a dev dependency) or, without it, as its text."""
    try:
        from fpdf import FPDF  # optional: only the dev install (make demo) has it
    except ImportError:
        return {"title": HANDOUT_TITLE, "text": "\n\n".join(HANDOUT_PAGES)}
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in HANDOUT_PAGES:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return {"title": HANDOUT_TITLE, "pdf_base64": base64.b64encode(pdf.output()).decode()}


async def _answer_of(http: httpx.AsyncClient, auth: dict[str, str], reply: httpx.Response) -> Any:
    """The JSON result of a request; a 202 (the gateway stopped waiting) is followed to its
    end by polling the stored request, as any client that lost its wait does."""
    if reply.status_code != 202:
        return reply.json() if reply.status_code in (200, 201) else None
    location = reply.json()["location"]
    async with asyncio.timeout(WAIT_S):
        while True:
            stored = (await http.get(location, headers=auth)).json()
            if stored["status"] not in ("pending", "running"):
                return stored["result"] if stored["status"] == "done" else None
            await asyncio.sleep(1)


async def _upload_handout(http: httpx.AsyncClient, auth: dict[str, str]) -> str | None:
    body = _handout()
    kind = "PDF" if "pdf_base64" in body else "text"
    _say(f"6. upload study material: a {len(HANDOUT_PAGES)}-page handout ({kind})")
    reply = await http.post("/api/materials", json=body, headers=auth)
    material = await _answer_of(http, auth, reply)
    if material is None:
        _say(f"   refused: {reply.status_code} {reply.text}")
        return None
    _say(f"   stored as {material['id']}: {material['pages']} pages")
    return str(material["id"])


async def _tutor_answer(http: httpx.AsyncClient, auth: dict[str, str], material_id: str) -> bool:
    _say(f"7. ask the tutor about it, streamed: {QUESTION}")
    body = {"topic": "Photosynthesis", "context": QUESTION, "material_ids": [material_id]}
    headers = {**auth, "Accept": "application/x-ndjson"}
    shown, pages, source = "", [], "model"
    async with http.stream("POST", "/api/tutor/stream", json=body, headers=headers) as stream:
        if stream.status_code != 200:
            await stream.aread()
            _say(f"   refused: {stream.status_code} {stream.text}")
            return False
        async for line in stream.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            match event.get("kind"):
                case "token":
                    shown += event["text"]
                case "reset":
                    shown = ""  # the tutor's check threw the text so far away
                case "citation":
                    pages.append(event["citation"]["page"])
                case "error":
                    _say(f"   error: {event['error']}")
                case "done":
                    source = event.get("source", "model")
                    if event.get("partial"):
                        return False
    label = "quoted from your material (extracts)" if source == "extract" else "by the model"
    _say(f"   answer, {label}:")
    for line in shown.strip().splitlines():
        _say(f"   | {line}")
    cited = ", ".join(f"page {p}" for p in sorted(set(pages))) or "no page"
    _say(f"   cites: {cited} of {HANDOUT_TITLE}")
    return True


async def _quiz(http: httpx.AsyncClient, auth: dict[str, str], material_id: str) -> bool:
    _say("8. a 3-question quiz on the handout (answers stay hidden until graded):")
    body = {"topic": "Photosynthesis", "num_questions": 3, "material_ids": [material_id]}
    reply = await http.post("/api/quiz/generate", json=body, headers=auth)
    quiz = await _answer_of(http, auth, reply)
    if quiz is None:
        _say(f"   refused: {reply.status_code} {reply.text}")
        return False
    for number, question in enumerate(quiz["questions"], 1):
        if question.get("source") == "extract":
            where = f", page {question['page']}" if question.get("page") else ""
            label = f"extract of your material{where}"
        else:
            label = "by the model"
        _say(f"   {number}. {question['text']}  [{label}]")
        for letter, option in zip("ABCDEFGH", question["options"], strict=False):
            _say(f"      {letter}) {option}")
    return True
