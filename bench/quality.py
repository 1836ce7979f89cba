"""Quality benchmark: what a student gets from the tutor, the quiz and the autopilot on the
configured model, measured on a corpus of the repository's own (``bench/corpus/``).

    .venv/bin/python bench/quality.py [--model embedded|scripted] [--topics N] [--texts N]
        [--runs N] [--run-minutes M] [--questions Q] [--out .run/quality-embedded.json]

Everything goes through the product's public HTTP API, as a client would send it, so the
same bench measures the code before and after a change:

- **Quiz**: ``POST /api/quiz/generate`` for each corpus topic with its context text; each
  item delivered is graded with ``POST /api/quiz/evaluate`` (answered by a student who picks
  the option best backed by the context), which reveals its key. Items are checked for
  empty or duplicate options, a key outside the options, and a key the context does not
  support (``bench/quality_metrics.py``).
- **Tutor**: each study text becomes a PDF (fpdf2, one page per corpus page), is read back
  with ``POST /api/extract-pdf-text`` and uploaded with ``POST /api/materials``; each of its
  questions is asked with ``POST /api/tutor/explain`` naming the material, and its first
  question also with ``POST /api/tutor/stream?format=ndjson``. Answers are measured for
  repetition (repeated-sentence rate, distinct-4-gram ratio), explanations for fields that
  copy each other, and citations against the page the answer is known to sit on.
- **Autopilot**: ``--runs`` runs, each by its own student on a plan of two corpus topics of
  one exam, started at once with ``duration_minutes = --run-minutes`` (10 by default). The
  run's clock is the wall clock (study time counts while running; there is no simulated
  clock in the product), so the runs really last up to that long. A scripted student answers
  each question as it appears, with the option best backed by the topic's context. A run
  counts when it ends ``completed`` with at least one graded answer. Lessons are measured
  like tutor answers.

Gateway, tutor, quiz and autopilot run as their own processes on a private database and
topic prefix (as ``bench/tutor.py`` does). ``--model embedded`` (the default) leaves the
model endpoint as configured (``OPENAI_BASE_URL``, else the embedded llama.cpp server that
``deploy/local/stack.sh infra`` starts); ``--model scripted`` serves the tests' scripted
OpenAI-compatible server in this process, answering each prompt as a competent model would
(from the material it was given, citing its pages), which proves the plumbing and that each
row can reach its target. The table is printed and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import io
import json
import os
import re
import sys
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fpdf import FPDF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality_metrics import (
    CitationTally,
    TextTally,
    best_supported_option,
    check_item,
    content_words,
    explanation_fields,
    explanation_text,
    median,
    near_copy_pairs,
)
from bench.stack import process_stack
from exammentor.logs import configure_logging
from tests.fakes.scripted_openai import Content, Reply, ScriptedOpenAI
from tests.infra import ROOT, provide_servers, unique_name

CORPUS = Path(__file__).resolve().parent / "corpus"
ENDED = ("completed", "failed", "stopped")


# --- Corpus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """A quiz topic and the text its items must be supported by."""

    exam: str
    name: str
    context: str


@dataclass(frozen=True)
class Question:
    """A question on a study text and the pages that answer it (1-based)."""

    text: str
    pages: tuple[int, ...]


@dataclass(frozen=True)
class StudyText:
    """A short study text: one string per PDF page."""

    id: str
    exam: str
    title: str
    pages: tuple[str, ...]
    questions: tuple[Question, ...]


def load_topics() -> list[Topic]:
    """The corpus's quiz topics, in file order (exams interleaved by :func:`spread`)."""
    raw = tomllib.loads((CORPUS / "topics.toml").read_text())["topic"]
    return spread([Topic(t["exam"], t["name"], " ".join(t["context"].split())) for t in raw])


def load_texts() -> list[StudyText]:
    """The corpus's study texts (exams interleaved by :func:`spread`)."""
    raw = tomllib.loads((CORPUS / "texts.toml").read_text())["text"]
    return spread(
        [
            StudyText(
                t["id"],
                t["exam"],
                t["title"],
                tuple(t["pages"]),
                tuple(Question(q["q"], tuple(q["pages"])) for q in t["questions"]),
            )
            for t in raw
        ]
    )


T = TypeVar("T", Topic, StudyText)


def spread(items: list[T]) -> list[T]:
    """Items reordered round-robin over exams, so the first N cover every exam."""
    by_exam: dict[str, list[T]] = {}
    for item in items:
        by_exam.setdefault(item.exam, []).append(item)
    queues = list(by_exam.values())
    ordered: list[T] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def pdf_of(pages: Sequence[str]) -> bytes:
    """A PDF with one page per text, as the tests make theirs."""
    doc = FPDF()
    doc.set_font("helvetica", size=12)
    for text in pages:
        doc.add_page()
        doc.multi_cell(0, 8, text)
    return bytes(doc.output())


# --- The scripted model: a competent answer to each prompt ----------------------------------

_PASSAGE = re.compile(r"^\[(?P<label>(?:S\d+ )?p\. \d+)\] (?P<text>.+)$", re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_FILLERS = (
    "Write the key terms down and link each one to its meaning.",
    "Say the idea aloud without notes to test your recall.",
    "Compare it with a related idea to see where the two differ.",
    "Review it again tomorrow so that it stays in memory.",
    "Draw a small diagram that connects the parts.",
    "Solve one past exam question that uses it.",
)


@dataclass
class CompetentModel:
    """Answers the prompts of the tutor and the quiz from what they give it.

    Explanations and streamed answers are built from the best-matching passage of the
    material in the prompt and cite its label; quiz items are clozes over the prompt's
    material (or the corpus context of the topic); lessons are a fixed shape with the topic
    named. Nothing repeats, so the scripted run shows each row at its target when the
    plumbing works.
    """

    contexts: dict[str, str]
    _counter: int = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or [{}]
        system = str(messages[0].get("content", ""))
        last = str(messages[-1].get("content", ""))
        if system.startswith("Write multiple-choice quiz questions"):
            return self._quiz(last)
        if system.startswith("Give a student short feedback"):
            return Content(
                json.dumps(
                    {
                        "feedback": "The chosen option does not match the material.",
                        "hint": "Find the sentence of the material that names the term.",
                    }
                )
            )
        if system.startswith("A student answered a quiz question wrongly"):
            return Content(json.dumps(self._diagnosis(last)))
        if "intuition: the idea in one line" in system:
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get(
                "schema"
            ) or {}
            return Content(json.dumps(self._explanation(last, list(schema.get("properties", {})))))
        if "Write markdown: the idea in one line" in system:
            return Content(self._markdown(last))
        if "Write a short markdown lesson" in system:
            return Content(self._lesson(last))
        return Content("A plain answer.")

    @staticmethod
    def _line(prompt: str, name: str) -> str:
        found = re.search(rf"^{name}: (.+)$", prompt, re.MULTILINE)
        return found.group(1).strip() if found else ""

    def _best_passage(self, prompt: str) -> tuple[str, list[str]]:
        passages = [(m.group("label"), m.group("text")) for m in _PASSAGE.finditer(prompt)]
        if not passages:
            return "", []
        asked = set(content_words(self._line(prompt, "Topic")))
        label, text = max(passages, key=lambda p: len(asked & set(content_words(p[1]))))
        return label, [s for s in _SENTENCE.split(text) if s.strip()]

    def _explanation(self, prompt: str, keys: list[str]) -> dict[str, str]:
        topic = self._line(prompt, "Topic") or "the topic"
        label, said = self._best_passage(prompt)
        cite = f" [{label}]" if label else ""
        body = said[1:] if len(said) > 1 else said
        fillers = iter(_FILLERS)
        answer: dict[str, str] = {}
        for key in keys:
            if key == "intuition":
                answer[key] = (said[0] if said else f"{topic} in one idea.") + cite
            elif key.startswith("t") and key[1:].isdigit():
                answer[key] = f"Part {key[1:]}"
            elif key.startswith("s") and key[1:].isdigit():
                index = int(key[1:]) - 1
                answer[key] = body[index] + cite if index < len(body) else next(fillers)
            elif key == "analogy":
                answer[key] = "It works like a recipe, where each step needs the one before."
            elif key == "example":
                answer[key] = "An exam question often asks for exactly this in a new setting."
            elif key == "pitfall":
                answer[key] = "A common mistake is to learn the terms without their reasons."
            else:
                answer[key] = f"In your own words, how would you answer: {topic}?"
        return answer

    def _markdown(self, prompt: str) -> str:
        topic = self._line(prompt, "Topic") or "the topic"
        label, said = self._best_passage(prompt)
        cite = f" [{label}]" if label else ""
        lines = [f"**Idea:** {said[0] if said else topic}{cite}", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(said[1:], start=1)]
        lines += ["", "Example: an exam question often asks for this in a new setting."]
        lines += ["Pitfall: learning the terms without their reasons."]
        lines += [f"Practice: explain {topic} to a friend in three sentences."]
        return "\n".join(lines)

    @staticmethod
    def _lesson(prompt: str) -> str:
        topic = re.sub(r"^Write the lesson on (.+)\.$", r"\1", prompt.splitlines()[-1])
        return (
            f"# {topic}\n\nThe key idea: {topic} is built from a few terms, each with a "
            "reason behind it.\n\nWorked example: take one past question on it, name the "
            "terms it uses, and answer it step by step.\n\nRecap: learn the terms with their "
            "reasons. Test yourself on one question a day."
        )

    def _quiz(self, prompt: str) -> Reply:
        topic = self._line(prompt, "Topic")
        count = int(self._line(prompt, "Questions") or 1)
        material = self._line(prompt, "Material") or self.contexts.get(topic, "")
        items = cloze_items(topic, material, count, start=self._counter)
        self._counter += count
        return Content(json.dumps({f"q{i + 1}": item for i, item in enumerate(items)}))

    def _diagnosis(self, prompt: str) -> dict[str, Any]:
        return {
            "confusion": "Takes a nearby term of the material for the one asked.",
            "counter_example": "The sentence of the material names one term, not the others.",
            "explanation": "Each blank has one term that the material puts there.",
            "redemption": {
                "question": "Which of these is a fruit?",
                "options": ["mango", "carrot", "potato", "onion"],
                "answer": "mango",
                "why": "A mango grows from a flower and holds a seed.",
                "concept": "reading the material",
            },
        }


_SPARE_TERMS = ("membrane", "velocity", "parliament", "interest", "glacier", "enzyme")
"""Distractors of last resort, for a material with few terms of its own."""


def cloze_items(topic: str, material: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    """Multiple-choice clozes over the material's sentences (the scripted model's quiz).

    Each sentence of six words or more gives a cloze over its longest content word not in
    the topic's name, then over its next longest, until ``count`` items are written;
    distractors are other terms of the material, not in the sentence.

    Args:
        topic: The quiz topic.
        material: The text to ask about.
        count: Items wanted.
        start: Shifts which option holds the key, so keys are spread over positions.

    Returns:
        Up to ``count`` items in the quiz prompt's answer shape.
    """
    said = [s for s in _SENTENCE.split(material) if len(s.split()) >= 6]
    topic_words = set(content_words(topic))

    def terms(text: str) -> list[str]:
        return [
            w
            for w in dict.fromkeys(re.findall(r"[A-Za-z][A-Za-z-]{4,}", text))
            if content_words(w) and not set(content_words(w)) & topic_words
        ]

    pool = [*terms(material), *_SPARE_TERMS]
    items: list[dict[str, Any]] = []
    used: set[str] = set()
    for depth in range(4):
        for sentence in said:
            candidates = sorted(terms(sentence), key=len, reverse=True)
            if depth >= len(candidates) or candidates[depth].lower() in used:
                continue
            key = candidates[depth]
            others: list[str] = []
            for term in pool:
                lowered = term.lower()
                if lowered not in sentence.lower() and lowered not in {o.lower() for o in others}:
                    others.append(term)
                if len(others) == 3:
                    break
            used.add(key.lower())
            options = [key, *others]
            shift = (start + len(items)) % 4
            options = options[shift:] + options[:shift]
            blank = re.sub(rf"\b{re.escape(key)}\b", "_____", sentence, count=1)
            items.append(
                {
                    "question": f"Which word fills the blank: {blank}",
                    "options": options,
                    "answer": key,
                    "why": sentence,
                    "concept": topic,
                }
            )
            if len(items) == count:
                return items
    return items


# --- The stack ------------------------------------------------------------------------------


async def register(http: httpx.AsyncClient) -> dict[str, str]:
    """A new student; the Authorization header."""
    reply = await http.post(
        "/api/users/register", json={"name": unique_name("quality-"), "password": "bench-pass"}
    )
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


# --- Quiz -----------------------------------------------------------------------------------


@dataclass
class QuizFigures:
    """What the quiz requests gave."""

    requests: int = 0
    with_three_valid: int = 0
    with_three_sound: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    items: int = 0
    bad_options: int = 0
    key_outside: int = 0
    unsupported: int = 0
    unsupported_sources: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    seconds_per_item: list[float] = field(default_factory=list)
    seconds_per_request: list[float] = field(default_factory=list)
    detail: list[dict[str, Any]] = field(default_factory=list)


async def quiz_phase(
    http: httpx.AsyncClient, topics: Sequence[Topic], questions: int, figures: QuizFigures
) -> None:
    """One quiz per topic, each item graded to reveal its key (into ``figures``)."""
    for topic in topics:
        auth = await register(http)
        started = time.monotonic()
        reply = await http.post(
            "/api/quiz/generate",
            json={
                "topic": topic.name,
                "context": topic.context,
                "num_questions": questions,
                "difficulty": "medium",
            },
            headers=auth,
        )
        seconds = time.monotonic() - started
        figures.requests += 1
        figures.seconds_per_request.append(seconds)
        entry: dict[str, Any] = {"exam": topic.exam, "topic": topic.name, "seconds": seconds}
        figures.detail.append(entry)
        if reply.status_code != 200:
            code = _error_code(reply)
            figures.refused[code] += 1
            entry.update(status=reply.status_code, error=code, message=reply.text[:400])
            print(f"  quiz {topic.name!r}: {reply.status_code} {code}", flush=True)
            continue
        items = reply.json().get("questions") or []
        valid = sound = 0
        checked = []
        for item in items:
            found = await grade(http, auth, item, topic.context)
            check = found["check"]
            figures.items += 1
            source = item_source(item)
            figures.sources[source] += 1
            if check.unsupported:
                figures.unsupported_sources[source] += 1
            figures.bad_options += check.empty_option or check.duplicate_options
            figures.key_outside += check.key_outside
            figures.unsupported += check.unsupported
            valid += check.valid
            sound += check.valid and not check.unsupported
            checked.append(
                {
                    "text": item.get("text"),
                    "options": item.get("options"),
                    "key": found["key"],
                    "source": source,
                    "problems": check.problems,
                }
            )
        if items:
            figures.seconds_per_item.append(seconds / len(items))
        figures.with_three_valid += valid >= 3
        figures.with_three_sound += sound >= 3
        entry.update(status=200, items=checked, valid=valid)
        print(
            f"  quiz {topic.name!r}: {len(items)} items, {valid} valid ({seconds:.1f} s)",
            flush=True,
        )


def item_source(item: dict[str, Any]) -> str:
    """Where an item says it came from (``model``, ``extract`` ...), however it says it:
    a string, or an object with a kind; ``unlabelled`` when it does not say."""
    source = item.get("source")
    if isinstance(source, dict):
        source = source.get("kind") or source.get("type") or source.get("source")
    return str(source) if source else "unlabelled"


def _error_code(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return f"http_{reply.status_code}"
    if isinstance(body, dict):
        for key in ("code", "error_code", "error"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("code"), str):
                return str(value["code"])
        detail = body.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("code"), str):
            return str(detail["code"])
    return f"http_{reply.status_code}"


async def grade(
    http: httpx.AsyncClient, auth: dict[str, str], item: dict[str, Any], source: str
) -> dict[str, Any]:
    """Answers one item as a student who reads the source, and checks it with its key."""
    options = [str(o) for o in item.get("options") or []]
    kind = str(item.get("question_type") or "multiple_choice")
    body: dict[str, Any] = {"question_id": item["id"]}
    if kind == "fill_in_the_blank":
        body["student_answer_text"] = "unknown"
    else:
        body["student_answer_index"] = best_supported_option(
            options, source, str(item.get("text") or "")
        )
    reply = await http.post("/api/quiz/evaluate", json=body, headers=auth)
    verdict = reply.json() if reply.status_code == 200 else {}
    index = verdict.get("correct_option_index")
    key = str(verdict.get("correct_answer") or "")
    check = check_item(
        question_type=kind,
        text=str(item.get("text") or ""),
        options=options,
        correct_option_index=index if isinstance(index, int) else None,
        correct_answer=key,
        source=source,
    )
    return {"check": check, "key": key}


# --- Tutor ----------------------------------------------------------------------------------


@dataclass
class TutorFigures:
    """What the tutor's answers over uploaded material gave."""

    explain_requests: int = 0
    explain_failed: Counter[str] = field(default_factory=Counter)
    explanations: TextTally = field(default_factory=TextTally)
    streams: TextTally = field(default_factory=TextTally)
    stream_failed: Counter[str] = field(default_factory=Counter)
    copied: int = 0
    copied_pairs: int = 0
    citations: CitationTally = field(default_factory=CitationTally)
    stream_citations: CitationTally = field(default_factory=CitationTally)
    extract_pages_read: int = 0
    extract_pages: int = 0
    seconds_per_answer: list[float] = field(default_factory=list)
    seconds_per_stream: list[float] = field(default_factory=list)
    detail: list[dict[str, Any]] = field(default_factory=list)


async def tutor_phase(
    http: httpx.AsyncClient, texts: Sequence[StudyText], figures: TutorFigures
) -> None:
    """Uploads each text as a PDF and asks its questions (into ``figures``)."""
    for study in texts:
        auth = await register(http)
        pdf = base64.b64encode(pdf_of(study.pages)).decode()
        extracted = await http.post("/api/extract-pdf-text", json={"pdf_base64": pdf}, headers=auth)
        read_back = extracted.json().get("text", "") if extracted.status_code == 200 else ""
        figures.extract_pages += len(study.pages)
        figures.extract_pages_read += sum(
            " ".join(page.split()[:6]) in " ".join(read_back.split()) for page in study.pages
        )
        files = {"file": (f"{study.id}.pdf", io.BytesIO(pdf_of(study.pages)), "application/pdf")}
        added = await http.post(
            "/api/materials", files=files, data={"title": study.title}, headers=auth
        )
        if added.status_code != 201:
            raise RuntimeError(f"upload of {study.id} refused: {added.status_code} {added.text}")
        material = str(added.json()["id"])
        for number, question in enumerate(study.questions):
            known = [(material, page) for page in question.pages]
            await explain(http, auth, study, question, material, known, figures)
            if number == 0:
                await stream(http, auth, study, question, material, known, figures)


def _cited(citations: Sequence[dict[str, Any]]) -> list[tuple[str | None, int]]:
    return [
        (None if c.get("material_id") is None else str(c["material_id"]), int(c["page"]))
        for c in citations
        if isinstance(c, dict) and isinstance(c.get("page"), int)
    ]


async def explain(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    study: StudyText,
    question: Question,
    material: str,
    known: list[tuple[str, int]],
    figures: TutorFigures,
) -> None:
    """One structured explanation over the material, measured."""
    started = time.monotonic()
    reply = await http.post(
        "/api/tutor/explain",
        json={"topic": question.text, "material_ids": [material], "difficulty": "medium"},
        headers=auth,
    )
    seconds = time.monotonic() - started
    figures.explain_requests += 1
    entry: dict[str, Any] = {"text": study.id, "question": question.text, "seconds": seconds}
    figures.detail.append(entry)
    if reply.status_code != 200:
        code = _error_code(reply)
        figures.explain_failed[code] += 1
        entry.update(status=reply.status_code, error=code)
        print(f"  explain {study.id}: {reply.status_code} {code}", flush=True)
        return
    body = reply.json()
    figures.seconds_per_answer.append(seconds)
    text = explanation_text(body)
    figures.explanations.add(text)
    pairs = near_copy_pairs(explanation_fields(body))
    figures.copied += bool(pairs)
    figures.copied_pairs += len(pairs)
    cited = _cited(body.get("citations") or [])
    figures.citations.add(cited, known)
    entry.update(
        status=200,
        near_copies=[list(p) for p in pairs],
        cited=[p for _, p in cited],
        known=list(question.pages),
        answer=text[:1500],
    )
    print(
        f"  explain {study.id}: cited {sorted(p for _, p in cited)} of known "
        f"{list(question.pages)}, {len(pairs)} near-copy pairs ({seconds:.1f} s)",
        flush=True,
    )


async def stream(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    study: StudyText,
    question: Question,
    material: str,
    known: list[tuple[str, int]],
    figures: TutorFigures,
) -> None:
    """One streamed (NDJSON) answer over the material, measured."""
    started = time.monotonic()
    tokens: list[str] = []
    citations: list[dict[str, Any]] = []
    error = ""
    resets = 0
    async with http.stream(
        "POST",
        "/api/tutor/stream?format=ndjson",
        json={"topic": question.text, "material_ids": [material], "difficulty": "medium"},
        headers=auth,
    ) as reply:
        if reply.status_code != 200:
            await reply.aread()
            error = _error_code(reply)
        else:
            async for line in reply.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("kind")
                if kind == "token":
                    tokens.append(str(event.get("text", "")))
                elif kind == "reset":
                    # The product says: discard what was shown, the answer starts again.
                    tokens.clear()
                    resets += 1
                elif kind == "citation":
                    citations.append(event.get("citation") or {})
                elif kind == "error":
                    error = str((event.get("error") or {}).get("code") or "stream_error")
    seconds = time.monotonic() - started
    markdown = "".join(tokens)
    entry: dict[str, Any] = {"text": study.id, "question": question.text, "stream": True}
    figures.detail.append(entry)
    if error and not markdown:
        figures.stream_failed[error] += 1
        entry.update(error=error)
        return
    figures.seconds_per_stream.append(seconds)
    figures.streams.add(markdown)
    cited = _cited(citations)
    figures.stream_citations.add(cited, known)
    entry.update(
        cited=[p for _, p in cited],
        known=list(question.pages),
        resets=resets,
        answer=markdown[:1500],
    )
    print(f"  stream {study.id}: cited {sorted(p for _, p in cited)} ({seconds:.1f} s)", flush=True)


# --- Autopilot ------------------------------------------------------------------------------


@dataclass
class AutopilotFigures:
    """What the autopilot runs gave."""

    runs: int = 0
    completed_graded: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    graded_answers: int = 0
    lessons: TextTally = field(default_factory=TextTally)
    detail: list[dict[str, Any]] = field(default_factory=list)


def plan_of(topics: Sequence[Topic]) -> dict[str, Any]:
    """A one-day study plan of the topics, in the original's shape."""
    return {
        "exam_name": topics[0].exam,
        "overview": "",
        "total_days": 1,
        "schedule": [
            {
                "day": 1,
                "theme": topics[0].exam,
                "topics": [{"name": t.name, "difficulty": "easy", "rationale": ""} for t in topics],
                "estimated_hours": 1,
            }
        ],
        "critical_topics": [],
    }


async def one_run(
    http: httpx.AsyncClient, topics: Sequence[Topic], minutes: int, slack_s: float
) -> dict[str, Any]:
    """Starts a run and answers its questions as a student who reads the context."""
    auth = await register(http)
    contexts = {t.name: t.context for t in topics}
    started = await http.post(
        "/api/autopilot/start",
        json={
            "study_plan": plan_of(topics),
            "exam_type": topics[0].exam,
            "duration_minutes": minutes,
        },
        headers=auth,
    )
    if started.status_code != 200:
        return {"status": f"refused {started.status_code}", "error": started.text[:300]}
    session = started.json()["session_id"]
    answered: set[str] = set()
    status: dict[str, Any] = {}
    deadline = time.monotonic() + minutes * 60 + slack_s
    while time.monotonic() < deadline:
        try:
            reply = await http.get(f"/api/autopilot/status/{session}", headers=auth)
        except httpx.TransportError:
            # A dropped connection (the gateway under load closed a kept-alive one): a
            # polling client asks again, as a browser does.
            await asyncio.sleep(1.0)
            continue
        if reply.status_code == 200:
            status = reply.json()
            if status.get("status") in ENDED:
                break
            question = status.get("current_question")
            if status.get("awaiting_input") and question and question["id"] not in answered:
                context = contexts.get(str(status.get("current_topic")), "")
                choice = best_supported_option(
                    question.get("options") or [], context, str(question.get("text") or "")
                )
                try:
                    await http.post(
                        f"/api/autopilot/answer/{session}",
                        json={"question_id": question["id"], "answer_index": choice},
                        headers=auth,
                    )
                except httpx.TransportError:
                    await asyncio.sleep(1.0)
                    continue  # the status tells whether the answer was taken
                answered.add(question["id"])
                continue
        await asyncio.sleep(1.0)
    else:
        await http.post(f"/api/autopilot/stop/{session}", headers=auth)
        status = (await http.get(f"/api/autopilot/status/{session}", headers=auth)).json()
        status["status"] = f"{status.get('status')} (still running at the bench's deadline)"
    return status


async def autopilot_phase(
    http: httpx.AsyncClient,
    topics: Sequence[Topic],
    runs: int,
    minutes: int,
    figures: AutopilotFigures,
) -> None:
    """``runs`` runs at once, each on two topics of one exam."""
    by_exam: dict[str, list[Topic]] = {}
    for topic in topics:
        by_exam.setdefault(topic.exam, []).append(topic)
    pairs = []
    exams = list(by_exam)
    for i in range(runs):
        pool = by_exam[exams[i % len(exams)]]
        first = (i // len(exams)) * 2 % len(pool)
        pairs.append([pool[first], pool[(first + 1) % len(pool)]])
    # The slack covers a call still in flight when the study time runs out.
    results = await asyncio.gather(*(one_run(http, pair, minutes, 600) for pair in pairs))
    for pair, status in zip(pairs, results, strict=True):
        steps = status.get("steps") or []
        graded = [
            s
            for s in steps
            if s.get("action") == "answer" and (s.get("data") or {}).get("correct") is not None
        ]
        lessons = [
            str((s.get("data") or {}).get("content") or "")
            for s in steps
            if s.get("action") == "lesson"
        ]
        for lesson in lessons:
            if lesson.strip():
                figures.lessons.add(lesson)
        figures.runs += 1
        figures.statuses[str(status.get("status"))] += 1
        figures.graded_answers += len(graded)
        figures.completed_graded += status.get("status") == "completed" and bool(graded)
        figures.detail.append(
            {
                "topics": [t.name for t in pair],
                "status": status.get("status"),
                "end_reason": status.get("end_reason"),
                "graded_answers": len(graded),
                "lessons": len(lessons),
                "steps": [s.get("action") for s in steps],
                "first_lesson": lessons[0][:1500] if lessons else "",
            }
        )
        print(
            f"  autopilot {[t.name for t in pair]}: {status.get('status')}, {len(graded)} graded, "
            f"{len(lessons)} lessons; {status.get('end_reason')}",
            flush=True,
        )


# --- The table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: what, the figure, and the issue's target."""

    key: str
    label: str
    value: float | None
    shown: str
    target: str


def share(part: int, whole: int) -> str:
    """``part/whole (pct)``."""
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "-"


def pct(value: float | None) -> str:
    """A 0..1 value as a percentage, '-' for none."""
    return "-" if value is None else f"{100 * value:.1f}%"


def ratio(value: float | None) -> str:
    """A 0..1 value with two decimals, '-' for none."""
    return "-" if value is None else f"{value:.2f}"


def secs(value: float | None) -> str:
    """Seconds with one decimal, '-' for none."""
    return "-" if value is None else f"{value:.2f} s"


def rows_of(quiz: QuizFigures, tutor: TutorFigures, auto: AutopilotFigures) -> list[Row]:
    """The table's rows."""
    q_share = quiz.with_three_valid / quiz.requests if quiz.requests else None
    return [
        Row("quiz_three_valid", "quiz requests with >= 3 valid items", q_share,
            share(quiz.with_three_valid, quiz.requests), ">= 90%"),
        Row("quiz_three_valid_supported", "  ... with >= 3 valid and supported items",
            quiz.with_three_sound / quiz.requests if quiz.requests else None,
            share(quiz.with_three_sound, quiz.requests), "-"),
        Row("quiz_items", "quiz items delivered (by source)", quiz.items,
            f"{quiz.items} ({_sources(quiz.sources)})", "-"),
        Row("items_bad_options", "items with duplicate or empty options", quiz.bad_options,
            share(quiz.bad_options, quiz.items), "0"),
        Row("items_key_outside", "items whose key is not one of the options", quiz.key_outside,
            share(quiz.key_outside, quiz.items), "0"),
        Row("items_unsupported", "items whose key the source text does not support",
            quiz.unsupported,
            share(quiz.unsupported, quiz.items)
            + (f" ({_sources(quiz.unsupported_sources)})" if quiz.unsupported else ""),
            "0 (extracts)"),
        Row("extract_pages_read", "study-text pages read back (extract-pdf-text)",
            tutor.extract_pages_read, share(tutor.extract_pages_read, tutor.extract_pages), "-"),
        Row("explain_repeated", "tutor explanations: repeated-sentence rate",
            tutor.explanations.repeated_rate, pct(tutor.explanations.repeated_rate), "< 5%"),
        Row("explain_distinct4", "tutor explanations: distinct-4-gram ratio",
            tutor.explanations.distinct_ratio, ratio(tutor.explanations.distinct_ratio), "-"),
        Row("stream_repeated", "tutor streams: repeated-sentence rate",
            tutor.streams.repeated_rate, pct(tutor.streams.repeated_rate), "< 5%"),
        Row("stream_distinct4", "tutor streams: distinct-4-gram ratio",
            tutor.streams.distinct_ratio, ratio(tutor.streams.distinct_ratio), "-"),
        Row("lesson_repeated", "autopilot lessons: repeated-sentence rate",
            auto.lessons.repeated_rate, pct(auto.lessons.repeated_rate), "< 5%"),
        Row("lesson_distinct4", "autopilot lessons: distinct-4-gram ratio",
            auto.lessons.distinct_ratio, ratio(auto.lessons.distinct_ratio), "-"),
        Row("explain_near_copies", "explanations with near-copy fields",
            tutor.copied, share(tutor.copied, tutor.explanations.texts), "0"),
        Row("citation_precision", "citation precision (explain)", tutor.citations.precision,
            f"{pct(tutor.citations.precision)} ({tutor.citations.correct}/"
            f"{tutor.citations.cited} cited)", ">= 90%"),
        Row("citation_recall", "citation recall (explain)", tutor.citations.recall,
            f"{pct(tutor.citations.recall)} ({tutor.citations.correct}/"
            f"{tutor.citations.known} known)", ">= 90%"),
        Row("stream_citation_precision", "citation precision (stream)",
            tutor.stream_citations.precision,
            f"{pct(tutor.stream_citations.precision)} ({tutor.stream_citations.correct}/"
            f"{tutor.stream_citations.cited} cited)", ">= 90%"),
        Row("stream_citation_recall", "citation recall (stream)", tutor.stream_citations.recall,
            f"{pct(tutor.stream_citations.recall)} ({tutor.stream_citations.correct}/"
            f"{tutor.stream_citations.known} known)", ">= 90%"),
        Row("autopilot_completed_graded", "autopilot runs completed with a graded answer",
            auto.completed_graded / auto.runs if auto.runs else None,
            f"{share(auto.completed_graded, auto.runs)}; {_sources(auto.statuses)}", "10/10"),
        Row("p50_quiz_item", "p50 seconds per quiz item", median(quiz.seconds_per_item),
            secs(median(quiz.seconds_per_item)), "-"),
        Row("p50_quiz_request", "p50 seconds per quiz request",
            median(quiz.seconds_per_request), secs(median(quiz.seconds_per_request)), "-"),
        Row("p50_tutor_answer", "p50 seconds per tutor answer (explain)",
            median(tutor.seconds_per_answer), secs(median(tutor.seconds_per_answer)), "-"),
        Row("p50_tutor_stream", "p50 seconds per tutor answer (stream)",
            median(tutor.seconds_per_stream), secs(median(tutor.seconds_per_stream)), "-"),
    ]  # fmt: skip


def _sources(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.most_common()) or "none"


def print_table(rows: Sequence[Row], heading: str) -> str:
    """Prints the table; returns it as printed."""
    width = max(len(r.label) for r in rows)
    shown = max(len(r.shown) for r in rows)
    lines = [heading, "", f"{'measure':<{width}}  {'value':<{shown}}  target"]
    lines.append("-" * (width + shown + 10))
    lines += [f"{r.label:<{width}}  {r.shown:<{shown}}  {r.target}" for r in rows]
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    return text


# --- Run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    """Sets up a private database and topics, starts the services, measures."""
    configure_logging("bench", "WARNING", "console")
    topics = load_topics()[args.skip_topics :][: args.topics]
    texts = load_texts()[args.skip_texts :][: args.texts]
    all_topics = load_topics()
    with provide_servers() as servers:
        model: ScriptedOpenAI | None = None
        if args.model == "scripted":
            model = ScriptedOpenAI(default=CompetentModel({t.name: t.context for t in all_topics}))
            await model.__aenter__()
        base_url = model.base_url if model else os.environ.get("OPENAI_BASE_URL", "")
        environ = {"OPENAI_BASE_URL": base_url} if base_url else {}
        stack_exits = AsyncExitStack()
        began = time.monotonic()
        quiz, tutor, auto = QuizFigures(), TutorFigures(), AutopilotFigures()
        phase = "start-up"
        try:
            stack = await stack_exits.enter_async_context(
                process_stack(
                    servers,
                    ["tutor", "quiz", "autopilot"],
                    label="quality",
                    environ=environ,
                    gateway={
                        "EXAMMENTOR_REQUEST_TIMEOUT_S": "900",
                        "EXAMMENTOR_LOGIN_LIMITS": '{"per_address": 100000, "per_name": 100}',
                    },
                    pool_max=10,
                )
            )
            await stack.ready(timeout_s=120)
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=1200) as http:
                phase = "quiz"
                print(f"quiz: {len(topics)} topics, {args.questions} questions each", flush=True)
                await quiz_phase(http, topics, args.questions, quiz)
                phase = "tutor"
                print(f"tutor: {len(texts)} study texts", flush=True)
                await tutor_phase(http, texts, tutor)
                phase = "autopilot"
                print(f"autopilot: {args.runs} runs of {args.run_minutes} min at once", flush=True)
                await autopilot_phase(http, all_topics, args.runs, args.run_minutes, auto)
                phase = ""
        except (asyncio.CancelledError, Exception) as error:  # noqa: BLE001 - reported below
            # What was measured before the interruption is still printed and written.
            traceback.print_exc()
            interrupted = f"{phase} ({type(error).__name__}: {str(error)[:200]})"
        else:
            interrupted = ""
        finally:
            await stack_exits.aclose()
            if model is not None:
                await model.__aexit__(None, None, None)
    minutes = (time.monotonic() - began) / 60
    endpoint = "scripted model (tests/fakes, answering as a competent model)"
    if args.model == "embedded":
        endpoint = f"model at {base_url or 'the default endpoint (embedded SmolLM2-135M)'}"
    heading = (
        f"quality on the {endpoint}; {len(topics)} quiz topics x {args.questions} questions, "
        f"{len(texts)} study texts ({sum(len(t.questions) for t in texts)} questions), "
        f"{args.runs} autopilot runs of {args.run_minutes} min; {minutes:.1f} min; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )
    if args.skip_topics or args.skip_texts:
        heading += f"; corpus from topic {args.skip_topics + 1} and text {args.skip_texts + 1}"
    if interrupted:
        heading += f"; INTERRUPTED during {interrupted}: later rows are empty"
    rows = rows_of(quiz, tutor, auto)
    printed = print_table(rows, heading)
    report = {
        "heading": heading,
        "model": args.model,
        "endpoint": base_url or "default",
        "arguments": vars(args),
        "minutes": minutes,
        "rows": [vars(r) for r in rows],
        "printed": printed,
        "quiz": {
            "refused": dict(quiz.refused),
            "sources": dict(quiz.sources),
            "detail": quiz.detail,
        },
        "tutor": {
            "explain_failed": dict(tutor.explain_failed),
            "stream_failed": dict(tutor.stream_failed),
            "extract_pages_read": [tutor.extract_pages_read, tutor.extract_pages],
            "detail": tutor.detail,
        },
        "autopilot": {"statuses": dict(auto.statuses), "detail": auto.detail},
    }
    out = Path(args.out or ROOT / ".run" / f"quality-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2, default=str))
    print(f"\nwritten to {out}")
    if interrupted:
        raise SystemExit(f"interrupted during {interrupted}")


def main() -> None:
    """Parses arguments and runs the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("embedded", "scripted"), default="embedded")
    parser.add_argument("--topics", type=int, default=32, help="quiz topics (corpus: 32)")
    parser.add_argument("--texts", type=int, default=11, help="study texts (corpus: 11)")
    parser.add_argument(
        "--skip-topics", type=int, default=0, help="start after this many quiz topics"
    )
    parser.add_argument("--skip-texts", type=int, default=0, help="start after this many texts")
    parser.add_argument("--runs", type=int, default=10, help="autopilot runs, started at once")
    parser.add_argument("--run-minutes", type=int, default=10, help="each run's study time")
    parser.add_argument("--questions", type=int, default=5, help="questions per quiz request")
    parser.add_argument(
        "--out", default="", help="the JSON report (default .run/quality-<model>.json)"
    )
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
