"""Topic name normalisation shared by the parser, the registry, the scheduler and the verifier,
and the word-for-word search for names in a student's goal built on it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`\u00b4]")
# Soft hyphens and zero-width characters (PDF copies are full of them) join, not split.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")
# \w is Unicode-aware; the underscore is punctuation for our purpose.
_NOT_WORD = re.compile(r"[\W_]+")


def normalise_topic_name(name: str) -> str:
    """Reduce a topic name to the form two spellings of the same topic share.

    Case, Unicode width forms, whitespace and punctuation are ignored; ``&`` reads as ``and``;
    apostrophes, soft hyphens and zero-width characters vanish (``Newton's`` = ``Newtons``).
    Words are kept as they are, so ``Vector`` and ``Vectors`` stay different: a match is
    exact, never a guess.

    Args:
        name: A topic name as written anywhere (syllabus, registry, plan).

    Returns:
        Lower-case words separated by single spaces; empty when the name has no words.
    """
    text = unicodedata.normalize("NFKC", name).casefold().replace("&", " and ")
    text = _INVISIBLE.sub("", _APOSTROPHES.sub("", text))
    return " ".join(_NOT_WORD.sub(" ", text).split())


def padded_phrase(text: str) -> str:
    """``text`` normalised and padded with a space each side, for :func:`mentions`.

    Args:
        text: Free text (a goal, a name).

    Returns:
        ``" <normalised text> "``.
    """
    return f" {normalise_topic_name(text)} "


def mentions(phrase: str, names: Iterable[str]) -> bool:
    """Whether ``phrase`` contains one of ``names`` word for word.

    Args:
        phrase: Text already passed through :func:`padded_phrase`.
        names: Names as written anywhere; a name with no words never matches.

    Returns:
        True when some name's normalised words occur in ``phrase`` as whole words.
    """
    return any((key := normalise_topic_name(name)) and f" {key} " in phrase for name in names)
