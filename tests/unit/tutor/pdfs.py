"""Test PDFs made with fpdf2: known text on known pages."""

from __future__ import annotations

import io
from collections.abc import Sequence

from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from PIL import Image

TOPIC_PAGES = (
    "Cell biology. The cell membrane is a lipid bilayer that controls what enters the cell.",
    "Genetics. Mendel crossed pea plants and found dominant and recessive traits.",
    "Photosynthesis. Chlorophyll in the chloroplast absorbs light; the light reactions split "
    "water and release oxygen, and the Calvin cycle fixes carbon dioxide into glucose.",
    "Ecology. A food chain moves energy from producers to consumers and decomposers.",
    "Evolution. Natural selection favours variations that improve survival.",
)
"""A five-page biology handout: page 3 is the only one about photosynthesis."""


def make_pdf(pages: Sequence[str], *, user_password: str | None = None) -> bytes:
    """A PDF with one page per text (an empty text makes a blank page)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    if user_password is not None:
        # RC4: pypdf reads it without the optional cryptography package.
        pdf.set_encryption(
            owner_password="owner",
            user_password=user_password,
            encryption_method=EncryptionMethod.RC4,
        )
    return bytes(pdf.output())


def make_image_pdf(pages: int = 2) -> bytes:
    """A PDF whose pages hold only an image (a scan): no text to extract."""
    picture = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(picture, format="PNG")
    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.image(io.BytesIO(picture.getvalue()), x=10, y=10, w=100)
    return bytes(pdf.output())
