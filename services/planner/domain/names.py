"""Topic name normalisation shared by the parser, the registry, the scheduler and the verifier."""

from __future__ import annotations

import re
import unicodedata

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
