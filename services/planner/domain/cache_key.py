"""The plan cache key: a hash of a request's normalised inputs and of what else decides the
plan (the registry, the model, the settings that shape the result).
"""

from __future__ import annotations

import hashlib
import json

from exammentor.contracts.plan import PlanRequest
from services.planner.domain.registry import SyllabusRegistry

PIPELINE_VERSION = 3
"""Part of every cache key: bump it when the same inputs should give a different plan."""


def registry_digest(registry: SyllabusRegistry) -> str:
    """A hash of everything in the registry that can change a plan.

    Args:
        registry: The registry.

    Returns:
        Hex digest.
    """
    digest = hashlib.sha256()
    for exam in registry.exams:
        for subject in exam.subjects:
            for t in subject.topics:
                digest.update(
                    repr(
                        (
                            exam.key,
                            exam.name,
                            exam.aliases,
                            subject.key,
                            subject.aliases,
                            t.sub_subject,
                            t.name,
                            t.weight,
                            t.hours,
                            t.difficulty,
                            t.prerequisites,
                            t.subtopics,
                            t.aliases,
                        )
                    ).encode()
                )
    return digest.hexdigest()


def plan_fingerprint(
    registry: SyllabusRegistry,
    model: str,
    *,
    max_fix_rounds: int,
    prose_max_days: int,
    prose_max_topics: int,
) -> str:
    """What decides a plan besides the request, as one hash for :func:`plan_cache_key`.

    Args:
        registry: The registry.
        model: The model's name (``"none"`` when planning without a model).
        max_fix_rounds: Most fix-loop rounds.
        prose_max_days: Most days given a model-written theme.
        prose_max_topics: Most topics given a model-written reason.

    Returns:
        Hex digest.
    """
    return hashlib.sha256(
        json.dumps(
            [
                PIPELINE_VERSION,
                registry_digest(registry),
                model,
                max_fix_rounds,
                prose_max_days,
                prose_max_topics,
            ]
        ).encode()
    ).hexdigest()


def plan_cache_key(request: PlanRequest, fingerprint: str) -> str:
    """The plan cache key of a request: a hash of its normalised inputs.

    Whitespace in the syllabus and goal, blank lines, the goal's case and the exam's case
    do not change the key; anything that can change the plan does (the dates included:
    the service fills ``start_date`` with today first).

    Args:
        request: The request, ``start_date`` filled.
        fingerprint: What else decides the plan (registry, model, settings).

    Returns:
        Hex digest.
    """
    syllabus = request.syllabus_text
    body = {
        "fingerprint": fingerprint,
        "syllabus": (
            None
            if syllabus is None
            else "\n".join(" ".join(line.split()) for line in syllabus.splitlines() if line.strip())
        ),
        "exam_type": " ".join(request.exam_type.casefold().split()),
        "goal": " ".join(request.goal.casefold().split()),
        "days": request.days,
        "hours_per_day": request.hours_per_day,
        "start_date": request.start_date.isoformat() if request.start_date else None,
        "exam_date": request.exam_date.isoformat() if request.exam_date else None,
        "days_off": [d.isoformat() for d in request.days_off],
        "overflow": request.overflow,
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()
