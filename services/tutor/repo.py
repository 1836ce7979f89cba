"""The tutor's SQL: study material and its passages, chats, and the answers it gave.

Every function runs in the caller's per-user transaction, so row-level security keeps each
user to their own rows; another user's material is simply not found. Reads for clients
(chat, material lists) are the kit's read models (:mod:`exammentor.read_models.tutor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from exammentor.contracts.tutor import ChatTurn, Citation
from exammentor.db import Connection
from services.tutor.domain import Passage


async def material_passages(
    conn: Connection, material_ids: Sequence[UUID]
) -> dict[UUID, list[Passage]]:
    """The passages of the user's materials among ``material_ids``, in reading order.

    Args:
        conn: A connection in the user's transaction.
        material_ids: Materials asked for.

    Returns:
        Passages by material; a material of another user (or none) is missing from it.
    """
    found: dict[UUID, list[Passage]] = {}
    if not material_ids:
        return found
    owned = await conn.fetch(
        "SELECT id FROM tutor_materials WHERE id = ANY($1::uuid[])", list(material_ids)
    )
    for row in owned:
        found[row["id"]] = []
    rows = await conn.fetch(
        "SELECT material_id, position, page, text FROM tutor_passages "
        "WHERE material_id = ANY($1::uuid[]) ORDER BY material_id, position",
        list(found),
    )
    for row in rows:
        found[row["material_id"]].append(
            Passage(
                material_id=row["material_id"],
                page=row["page"],
                position=row["position"],
                text=row["text"],
            )
        )
    return found


async def insert_material(
    conn: Connection,
    *,
    material_id: UUID,
    user_id: UUID,
    request_id: UUID,
    title: str,
    kind: str,
    page_count: int,
    chars: int,
    passages: Sequence[Passage],
) -> str:
    """Stores one material and its passages.

    Returns:
        The row's ``created_at`` as ISO 8601.
    """
    created = await conn.fetchval(
        "INSERT INTO tutor_materials (id, user_id, request_id, title, kind, page_count, chars) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
        material_id,
        user_id,
        request_id,
        title,
        kind,
        page_count,
        chars,
    )
    await conn.executemany(
        "INSERT INTO tutor_passages (material_id, user_id, position, page, text) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(material_id, user_id, p.position, p.page, p.text) for p in passages],
    )
    return str(created.isoformat())


async def material_exists(conn: Connection, material_id: UUID) -> bool:
    """Whether the user has this material (row-level security hides another user's)."""
    found = await conn.fetchval("SELECT true FROM tutor_materials WHERE id = $1", material_id)
    return found is not None


async def delete_material(conn: Connection, material_id: UUID) -> bool:
    """Deletes one of the user's materials (its passages go with it).

    Returns:
        Whether there was such a material.
    """
    deleted = await conn.fetchval(
        "DELETE FROM tutor_materials WHERE id = $1 RETURNING id", material_id
    )
    return deleted is not None


async def chat_turns(conn: Connection, topic_id: str) -> list[ChatTurn]:
    """The user's stored chat about ``topic_id``, oldest first (empty when none)."""
    messages = await conn.fetchval("SELECT messages FROM tutor_chats WHERE topic_id = $1", topic_id)
    turns: list[ChatTurn] = []
    for item in messages or []:
        # Rows of the original kept "assistant" in places; the contract's role is "ai".
        role = "ai" if item.get("role") in ("ai", "assistant") else "user"
        turns.append(ChatTurn(role=role, content=str(item.get("content", ""))))
    return turns


async def save_chat(
    conn: Connection,
    *,
    user_id: UUID,
    topic_id: str,
    messages: Sequence[ChatTurn],
    explanation: str | None,
) -> None:
    """Upserts the whole chat of one topic (the original's ``POST /api/tutor/chat``)."""
    await conn.execute(
        "INSERT INTO tutor_chats (user_id, topic_id, messages, explanation, last_updated) "
        "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (user_id, topic_id) DO UPDATE SET "
        "messages = EXCLUDED.messages, explanation = EXCLUDED.explanation, last_updated = now()",
        user_id,
        topic_id,
        [t.model_dump() for t in messages],
        explanation,
    )


async def append_chat(
    conn: Connection,
    *,
    user_id: UUID,
    topic_id: str,
    turns: Sequence[ChatTurn],
    first_explanation: str | None,
) -> None:
    """Adds turns to a topic's chat in one statement (no read-modify-write), and sets its
    ``explanation`` when it has none yet."""
    await conn.execute(
        "INSERT INTO tutor_chats (user_id, topic_id, messages, explanation, last_updated) "
        "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (user_id, topic_id) DO UPDATE SET "
        "messages = tutor_chats.messages || EXCLUDED.messages, "
        "explanation = COALESCE(tutor_chats.explanation, EXCLUDED.explanation), "
        "last_updated = now()",
        user_id,
        topic_id,
        [t.model_dump() for t in turns],
        first_explanation,
    )


async def insert_answer(
    conn: Connection,
    *,
    answer_id: UUID,
    user_id: UUID,
    request_id: UUID,
    kind: str,
    topic: str,
    topic_id: str | None,
    answer: dict[str, Any],
    citations: Sequence[Citation],
    partial: bool,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: float,
) -> None:
    """Stores one answer of the tutor (explain, stream or lesson), whole or partial."""
    await conn.execute(
        "INSERT INTO tutor_answers (id, user_id, request_id, kind, topic, topic_id, answer, "
        "citations, partial, prompt_tokens, completion_tokens, latency_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        answer_id,
        user_id,
        request_id,
        kind,
        topic,
        topic_id,
        answer,
        [c.model_dump(mode="json") for c in citations],
        partial,
        prompt_tokens,
        completion_tokens,
        latency_ms,
    )
