"""Read models of the tutor's tables (``tutor_chats``, ``tutor_materials``,
``tutor_passages``): a topic's chat and the student's material list as the API shows them.
The tutor writes these tables (:mod:`services.tutor.repo`); this module only reads them,
for the gateway.
"""

from __future__ import annotations

import json

from exammentor.contracts.tutor import ChatHistory, ChatTurn, Material, MaterialList
from exammentor.db import Connection


async def tutor_chat(conn: Connection, topic_id: str) -> ChatHistory:
    """``GET /api/tutor/chat``: the user's chat of one topic; none is
    ``{messages: [], explanation: null}``, as in the original.

    Args:
        conn: A connection in the user's transaction.
        topic_id: The topic's slug.

    Returns:
        The chat (an ``explanation`` stored as JSON by the original comes back as JSON text).
    """
    row = await conn.fetchrow(
        "SELECT messages, explanation FROM tutor_chats WHERE topic_id = $1", topic_id
    )
    if row is None:
        return ChatHistory()
    turns = [
        ChatTurn(
            role="ai" if m.get("role") in ("ai", "assistant") else "user",
            content=str(m.get("content", "")),
        )
        for m in row["messages"] or []
    ]
    explanation = row["explanation"]
    if explanation is not None and not isinstance(explanation, str):
        explanation = json.dumps(explanation)
    return ChatHistory(messages=turns, explanation=explanation)


async def tutor_materials(conn: Connection) -> MaterialList:
    """``GET /api/materials``: the user's study material, newest first, without its text.

    Args:
        conn: A connection in the user's transaction.

    Returns:
        The list.
    """
    rows = await conn.fetch(
        "SELECT m.id, m.title, m.kind, m.page_count AS pages, m.chars, m.created_at, "
        "(SELECT count(*) FROM tutor_passages p WHERE p.material_id = m.id) AS passages "
        "FROM tutor_materials m ORDER BY m.created_at DESC, m.id"
    )
    return MaterialList(
        materials=[
            Material.model_validate({**dict(r), "created_at": r["created_at"].isoformat()})
            for r in rows
        ]
    )
