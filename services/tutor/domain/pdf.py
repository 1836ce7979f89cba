"""Text of a PDF, page by page, with pypdf; limits stated in the refusal when passed.

Two sets of limits:

- :data:`EXTRACT_LIMITS`, the original ``/api/extract-pdf-text`` route: the first 50 pages
  are read and the text is cut at 12,000 characters; more pages or text are not an error.
- :data:`MATERIAL_LIMITS`, stored study material: a PDF over the page or text limit is
  refused with the numbers (silently storing half a book would make answers cite a book the
  tutor never saw).

Either way a PDF that is not one (random bytes, truncated), needs a password, or holds no
text on any page read (scans) is refused with an error of its own type, so the handler can
answer each with a clear 4xx. Nothing here reads files or the network: bytes in, text out.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

from exammentor.contracts.tutor import EXTRACT_MAX_CHARS, EXTRACT_MAX_PAGES, MAX_PDF_BYTES
from services.tutor.domain.errors import (
    EmptyMaterialError,
    MaterialTooLongError,
    PdfEncryptedError,
    PdfNoTextError,
    PdfTooLargeError,
    PdfTooManyPagesError,
    PdfUnreadableError,
)

PAGE_SEPARATOR = "\n\n"
"""Between pages in the joined text."""

# pypdf raises its own errors for most broken files, and plain Python ones for the rest
# (a malformed object table can surface as a KeyError or a recursion into itself).
_READ_FAILURES = (
    PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
    ZeroDivisionError,
    AssertionError,
)

# Control characters but tab and newline: PDFs carry them as glyph codes, and PostgreSQL
# text refuses NUL.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class PdfLimits:
    """How much of a PDF is read, and what happens beyond it.

    Attributes:
        max_bytes: Largest file accepted; larger is always refused.
        max_pages: Pages read.
        max_chars: Characters of text kept (page separators not counted).
        beyond: ``cut``: read up to the limits and drop the rest (the original route);
            ``refuse``: a file over the page or text limit is refused with the numbers.
    """

    max_bytes: int
    max_pages: int
    max_chars: int
    beyond: Literal["cut", "refuse"]


EXTRACT_LIMITS = PdfLimits(
    max_bytes=MAX_PDF_BYTES, max_pages=EXTRACT_MAX_PAGES, max_chars=EXTRACT_MAX_CHARS, beyond="cut"
)
"""The original ``/api/extract-pdf-text``: first 50 pages, text cut at 12,000 characters."""

MATERIAL_LIMITS = PdfLimits(
    max_bytes=20 * 1024 * 1024, max_pages=300, max_chars=600_000, beyond="refuse"
)
"""Stored study material: a textbook chapter or a set of notes, not a library."""


class PageText(BaseModel):
    """The text of one page."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    """The page's number in the file, from 1."""
    text: str


class PdfPages(BaseModel):
    """What was read of a PDF."""

    model_config = ConfigDict(frozen=True)

    pages: tuple[PageText, ...]
    """Pages read that hold text, in order; pages without text are left out."""
    page_count: int = Field(ge=1)
    """Pages in the file."""
    pages_read: int = Field(ge=1)
    truncated: bool
    """Whether pages or text were left out by the limits (``cut`` only)."""

    @property
    def text(self) -> str:
        """The pages' text joined, a blank line between pages."""
        return PAGE_SEPARATOR.join(page.text for page in self.pages)


def tidy_page_text(text: str) -> str:
    """A page's text as stored: NFC, no control characters, runs of spaces collapsed, no
    trailing spaces, at most one blank line in a row.

    Args:
        text: Text as the PDF reader extracted it.

    Returns:
        The tidied text (empty when there was none).
    """
    # Lone surrogates cannot be stored as UTF-8; replace rather than refuse a whole file.
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text.replace("\r\n", "\n")))
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _open(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except _READ_FAILURES as exc:
        raise PdfUnreadableError(_reason(exc)) from exc
    if reader.is_encrypted:
        # Many PDFs are "encrypted" with an empty user password (copy or print restrictions
        # only); any viewer opens those, and so do we.
        try:
            opened = reader.decrypt("")
        except DependencyError as exc:
            raise PdfEncryptedError("its cipher is not supported") from exc
        except _READ_FAILURES as exc:
            raise PdfUnreadableError(_reason(exc)) from exc
        if not opened:
            raise PdfEncryptedError
    return reader


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:120]
    return text or type(exc).__name__


def read_pdf_pages(data: bytes, limits: PdfLimits = MATERIAL_LIMITS) -> PdfPages:
    """The text of a PDF, page by page, within ``limits``.

    Args:
        data: The file's bytes.
        limits: How much to read and whether more is cut or refused.

    Returns:
        The pages that hold text, the page count and whether anything was cut.

    Raises:
        PdfTooLargeError: The file is over ``limits.max_bytes``.
        PdfUnreadableError: Not a PDF, or a corrupt one.
        PdfEncryptedError: The PDF needs a password.
        PdfTooManyPagesError: More pages than ``limits.max_pages`` (``refuse`` only).
        MaterialTooLongError: More text than ``limits.max_chars`` (``refuse`` only).
        PdfNoTextError: No page read holds text.
    """
    if len(data) > limits.max_bytes:
        raise PdfTooLargeError(len(data), limits.max_bytes)
    reader = _open(data)
    try:
        page_count = len(reader.pages)
    except FileNotDecryptedError as exc:
        raise PdfEncryptedError from exc
    except _READ_FAILURES as exc:
        raise PdfUnreadableError(_reason(exc)) from exc
    if page_count == 0:
        raise PdfUnreadableError("it has no pages")
    if page_count > limits.max_pages and limits.beyond == "refuse":
        raise PdfTooManyPagesError(page_count, limits.max_pages)
    pages_read = min(page_count, limits.max_pages)
    pages: list[PageText] = []
    chars = 0
    truncated = page_count > pages_read
    for index in range(pages_read):
        try:
            raw = reader.pages[index].extract_text()
        except FileNotDecryptedError as exc:
            raise PdfEncryptedError from exc
        except _READ_FAILURES:
            # One page with a broken content stream should not cost the whole file; it
            # counts as a page without text.
            raw = ""
        text = tidy_page_text(raw)
        if not text:
            continue
        if chars + len(text) > limits.max_chars:
            if limits.beyond == "refuse":
                raise MaterialTooLongError(chars + len(text), limits.max_chars)
            text = text[: limits.max_chars - chars].rstrip()
            truncated = True
            if text:
                pages.append(PageText(number=index + 1, text=text))
            pages_read = index + 1
            break
        chars += len(text)
        pages.append(PageText(number=index + 1, text=text))
    if not pages:
        raise PdfNoTextError(pages_read)
    return PdfPages(
        pages=tuple(pages), page_count=page_count, pages_read=pages_read, truncated=truncated
    )


def extract_pdf_text(data: bytes, limits: PdfLimits = EXTRACT_LIMITS) -> str:
    """The text of ``/api/extract-pdf-text``: the first 50 pages, cut at 12,000 characters.

    Args:
        data: The file's bytes.
        limits: The route's limits (the original's by default).

    Returns:
        The pages' text, a blank line between pages, at most ``limits.max_chars`` long.

    Raises:
        PdfTooLargeError: The file is over the size limit.
        PdfUnreadableError: Not a PDF, or a corrupt one.
        PdfEncryptedError: The PDF needs a password.
        PdfNoTextError: No page read holds text.
    """
    # The separators count too: the original cut the joined text.
    return read_pdf_pages(data, limits).text[: limits.max_chars].rstrip()


def text_pages(text: str, limit_chars: int = MATERIAL_LIMITS.max_chars) -> tuple[PageText, ...]:
    """A text upload as material: one page (a text has no pages of its own).

    Args:
        text: The uploaded text.
        limit_chars: The most characters accepted.

    Returns:
        One page, numbered 1.

    Raises:
        EmptyMaterialError: No text.
        MaterialTooLongError: More than ``limit_chars`` characters.
    """
    tidy = tidy_page_text(text)
    if not tidy:
        raise EmptyMaterialError
    if len(tidy) > limit_chars:
        raise MaterialTooLongError(len(tidy), limit_chars)
    return (PageText(number=1, text=tidy),)
