"""How the quiz compares texts: options, question texts and written answers."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[\W_]+")


def normalised(text: str) -> str:
    """``text`` folded for comparison: case, accents' forms, punctuation and spacing ignored.

    ``"  Newton's  2nd law."`` and ``"newton s 2nd LAW"`` compare equal, so a model's
    near-duplicate options and a student's differently typed answer are recognised.

    Args:
        text: Any text.

    Returns:
        Lower-case words joined by single spaces ('' for text without words).
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def tidy(text: str) -> str:
    """``text`` on one line with single spaces and no surrounding quotes.

    Args:
        text: A model's or a client's text.

    Returns:
        The tidied text (possibly empty).
    """
    return " ".join(str(text).split()).strip(" \"'")
