"""Errors of the tutor's domain; each one is bad input the service answers with a 4xx.

Every error has a ``code`` (the error code of the gateway's answer) and carries the numbers
behind it, so the message can say which limit was passed and by how much.
"""

from __future__ import annotations

from typing import ClassVar


class TutorError(ValueError):
    """Base class: the request cannot be served as it stands."""

    code: ClassVar[str] = "invalid_request"


class MaterialError(TutorError):
    """Study material (a PDF or a text) that cannot be used."""

    code = "material_invalid"


class PdfUnreadableError(MaterialError):
    """Bytes that are not a PDF pypdf can read (corrupt, truncated, or not a PDF at all).

    Attributes:
        reason: What the reader said, for the log and the message.
    """

    code = "pdf_unreadable"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the file is not a readable PDF ({reason})")


class PdfEncryptedError(MaterialError):
    """A PDF that needs a password to open."""

    code = "pdf_encrypted"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"the PDF is encrypted and cannot be read without its password{extra}; "
            "save an unprotected copy and upload that"
        )


class PdfNoTextError(MaterialError):
    """A PDF whose pages hold no text (scans, photos): there is nothing to read.

    Attributes:
        pages: Pages looked at.
    """

    code = "pdf_no_text"

    def __init__(self, pages: int) -> None:
        self.pages = pages
        super().__init__(
            f"none of the {pages} page{'' if pages == 1 else 's'} read holds text (a scan or "
            "images only?); upload a PDF with selectable text, or describe the pages as images"
        )


class PdfTooLargeError(MaterialError):
    """A PDF over the size limit.

    Attributes:
        size_bytes: The file's size.
        limit_bytes: The largest size accepted.
    """

    code = "pdf_too_large"

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"the PDF is {size_bytes:,} bytes; the limit is {limit_bytes:,} bytes")


class PdfTooManyPagesError(MaterialError):
    """A PDF with more pages than stored material may have.

    Attributes:
        pages: The file's page count.
        limit: The most pages accepted.
    """

    code = "pdf_too_many_pages"

    def __init__(self, pages: int, limit: int) -> None:
        self.pages = pages
        self.limit = limit
        super().__init__(f"the PDF has {pages:,} pages; the limit is {limit:,}")


class MaterialTooLongError(MaterialError):
    """Material with more text than stored material may have.

    Attributes:
        chars: Characters of text found (counting stopped soon after the limit).
        limit: The most characters accepted.
    """

    code = "material_too_long"

    def __init__(self, chars: int, limit: int) -> None:
        self.chars = chars
        self.limit = limit
        super().__init__(
            f"the material holds more than {limit:,} characters of text "
            f"({chars:,} counted); split it into smaller files"
        )


class EmptyMaterialError(MaterialError):
    """A text upload with nothing in it."""

    code = "material_empty"

    def __init__(self) -> None:
        super().__init__("the material holds no text")


class VisionUnsupportedError(TutorError):
    """The configured model cannot read images, so an image route cannot be served.

    Attributes:
        model: The model's name.
    """

    code = "vision_unsupported"

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"the configured model {model!r} cannot read images; configure a model that "
            "takes image input to use this route"
        )
