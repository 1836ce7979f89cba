"""Reading a weak model's answers: the hygiene every service that calls a model shares.

The embedded model (SmolLM2-135M) copies its input, repeats itself, ignores length limits
and sometimes stops answering at all. So every service:

- asks for small JSON objects with fixed keys (:func:`keyed_schema`) under a generated-token
  cap (:func:`token_budget`), with no schema descriptions for the model to copy
  (:data:`ANSWER_CONFIG`);
- cleans and clips every text it keeps (:func:`clean`, :func:`clip`) and refuses looping
  text (:func:`is_degenerate`; word lists, repeated phrases and sentences, near-copied
  fields and echoes of the prompt, also on a stream as it is written, are
  :mod:`exammentor.llm.degenerate_text`'s);
- sends an answer back for repair only when most of its items are unusable
  (:func:`check_mostly_usable`), replacing the odd bad item with text of its own;
- stops calling a model that failed within the same run (:class:`ModelRun`), so one outage
  costs one timeout, not one per step.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from exammentor.llm.client import LLMClient
from exammentor.llm.messages import ChatMessage, LLMError, LLMInvalidOutput, Message
from exammentor.llm.sampling import GREEDY, Sampling
from exammentor.llm.structured import extract_json
from exammentor.logs import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

JSON_ONLY = "Reply with JSON only."
"""The line every structured prompt ends its system message with."""

_NOT_WORD = re.compile(r"[\W_]+")
# NUL and the other C0/C1 controls except tab and newline: never worth keeping from a model.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def ask(system: str, user: str) -> list[ChatMessage]:
    """A two-message prompt: instructions, then the material.

    Args:
        system: What the model is to do and how to answer.
        user: The material of this call.

    Returns:
        The messages.
    """
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def clean(text: str) -> str:
    """A model's text on one line: control characters gone, whitespace collapsed, stray
    quotes trimmed.

    Args:
        text: Any text a model wrote.

    Returns:
        The cleaned text (possibly empty).
    """
    return " ".join(_CONTROL.sub(" ", str(text)).split()).strip(" \"'")


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis when longer.

    Args:
        text: Any text.
        limit: Most characters kept, the ellipsis included.

    Returns:
        The clipped text.
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def words(text: str) -> list[str]:
    """The lower-case words of ``text`` (punctuation and case ignored)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_WORD.sub(" ", folded).split()


def is_degenerate(text: str, *, min_words: int = 8, min_distinct: float = 0.5) -> bool:
    """Whether a text is the model looping: few distinct words among many.

    Args:
        text: A model's text.
        min_words: Shorter texts are never judged degenerate.
        min_distinct: The share of distinct words below which the text loops.

    Returns:
        True for looping text.
    """
    found = words(text)
    return len(found) >= min_words and len(set(found)) / len(found) < min_distinct


def _no_description(schema: dict[str, Any]) -> None:
    # A class docstring becomes the schema's description, which the repair prompt shows the
    # model; a small model copies it into its answer ("The model's overview of a plan.").
    schema.pop("description", None)


ANSWER_CONFIG = ConfigDict(extra="forbid", json_schema_extra=_no_description)
"""The config of every answer model: no unknown keys, no description in the schema."""


def check_mostly_usable(problems: Sequence[str], usable: int, total: int) -> None:
    """Raises (so the client asks for a repair) when fewer than half of the items are usable.

    Args:
        problems: What was wrong with the unusable items, for the repair prompt.
        usable: Items that can be kept.
        total: Items asked for.

    Raises:
        ValueError: Fewer than half usable; the message lists the first problems.
    """
    if total and usable * 2 < total:
        raise ValueError("; ".join(problems[:8]) or "the answer could not be used")


def keyed_schema(name: str, base: type[M], prefix: str, count: int) -> type[M]:
    """``base`` with ``count`` required text fields ``<prefix>1`` .. ``<prefix>N``.

    Small keys keep the weak model's answers short and make each item checkable on its own.

    Args:
        name: The schema's name (shown to the model).
        base: The answer model to extend.
        prefix: The key prefix (``d`` for days, ``t`` for topics ...).
        count: How many keyed items.

    Returns:
        The new model class.
    """
    fields: dict[str, Any] = {f"{prefix}{i}": (str, ...) for i in range(1, count + 1)}
    return create_model(name, __base__=base, **fields)


def token_budget(per_item: int, items: int, base: int = 24) -> int:
    """Generated-token cap for an answer of ``items`` keyed items.

    Args:
        per_item: Tokens allowed per item.
        items: Items asked for.
        base: Tokens for the braces and keys.

    Returns:
        The cap.
    """
    return base + per_item * max(1, items)


class ModelRun:
    """The model calls of one run (one command): a model that failed is not asked again.

    ``status`` records per purpose what happened (``ok``, ``invalid``, ``unavailable``,
    ``skipped`` after an earlier failure, ``off`` without a model), so a result can say which
    parts of it the model wrote.
    """

    def __init__(self, llm: LLMClient | None) -> None:
        self.llm = llm
        self.down = llm is None
        self.status: dict[str, str] = {}

    async def ask(
        self,
        purpose: str,
        messages: Sequence[Message],
        schema: type[M],
        *,
        max_tokens: int,
        validate: Callable[[M], None] | None = None,
        sampling: Sampling = GREEDY,
        repairs: int | None = None,
        keep_unchecked: bool = False,
    ) -> M | None:
        """A structured answer, or None when the model is down or its answer unusable.

        Args:
            purpose: What the call is for (metrics, usage rows, ``status``).
            messages: The prompt.
            schema: The answer model.
            max_tokens: Cap on generated tokens.
            validate: Extra checks; a ``ValueError`` asks the model for a repair.
            sampling: How the first round samples (a caller that asks again in rounds of
                its own samples each differently).
            repairs: Repair rounds (``None``: the client's setting).
            keep_unchecked: Return an answer that matches ``schema`` but failed
                ``validate`` (its status stays ``invalid``), for a caller that checks the
                answer's items one by one and keeps the good ones.

        Returns:
            The validated answer, or None (the caller falls back to its own text).
        """
        if self.down or self.llm is None:
            self.status[purpose] = "off" if self.llm is None else "skipped"
            return None
        try:
            answer = await self.llm.structured(
                messages=messages,
                schema=schema,
                purpose=purpose,
                max_tokens=max_tokens,
                sampling=sampling,
                validate=validate,
                repairs=repairs,
            )
        except LLMInvalidOutput as exc:
            self.status[purpose] = "invalid"
            log.info("model output unusable; own text kept", purpose=purpose, errors=exc.errors)
            return _schema_valid(schema, exc.output) if keep_unchecked else None
        except LLMError as exc:
            self.status[purpose] = "unavailable"
            self.down = True
            log.warning(
                "model unavailable; going on without it", purpose=purpose, reason=exc.reason
            )
            return None
        self.status[purpose] = "ok"
        return answer


def _schema_valid(schema: type[M], output: str) -> M | None:
    """The answer in ``output`` when it matches ``schema``, else None."""
    try:
        return schema.model_validate(extract_json(output))
    except (ValueError, ValidationError):
        return None
