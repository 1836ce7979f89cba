"""PDF text page by page: known text on known pages, the limits, and the refusals."""

from __future__ import annotations

import os
import random

import pytest

from exammentor.contracts.tutor import EXTRACT_MAX_CHARS, EXTRACT_MAX_PAGES
from services.tutor.domain import (
    EXTRACT_LIMITS,
    MATERIAL_LIMITS,
    EmptyMaterialError,
    MaterialError,
    MaterialTooLongError,
    PdfEncryptedError,
    PdfLimits,
    PdfNoTextError,
    PdfTooLargeError,
    PdfTooManyPagesError,
    PdfUnreadableError,
    extract_pdf_text,
    read_pdf_pages,
    text_pages,
)
from services.tutor.domain.pdf import tidy_page_text
from tests.unit.tutor.pdfs import TOPIC_PAGES, make_image_pdf, make_pdf


def test_each_page_keeps_its_number_and_text() -> None:
    read = read_pdf_pages(make_pdf(TOPIC_PAGES))
    assert [page.number for page in read.pages] == [1, 2, 3, 4, 5]
    assert (read.page_count, read.pages_read, read.truncated) == (5, 5, False)
    for page, expected in zip(read.pages, TOPIC_PAGES, strict=True):
        assert " ".join(page.text.split()) == expected


def test_blank_pages_are_left_out_but_numbers_stay_true() -> None:
    read = read_pdf_pages(make_pdf(["first", "", "third"]))
    assert [(page.number, page.text) for page in read.pages] == [(1, "first"), (3, "third")]
    assert read.text == "first\n\nthird"


def test_the_route_reads_the_first_50_pages_only() -> None:
    pdf = make_pdf([f"page{n}" for n in range(1, EXTRACT_MAX_PAGES + 6)])
    text = extract_pdf_text(pdf)
    assert "page50" in text
    assert "page51" not in text
    read = read_pdf_pages(pdf, EXTRACT_LIMITS)
    assert (read.page_count, read.pages_read, read.truncated) == (55, 50, True)


def test_the_route_cuts_the_text_at_12000_characters() -> None:
    page = " ".join(["photosynthesis"] * 300)  # 4,499 characters a page
    text = extract_pdf_text(make_pdf([page] * 4))
    assert len(text) <= EXTRACT_MAX_CHARS
    assert len(text) > EXTRACT_MAX_CHARS - 20
    assert text.startswith("photosynthesis photosynthesis")


def test_stored_material_over_the_page_limit_is_refused_with_the_numbers() -> None:
    limits = PdfLimits(max_bytes=10**7, max_pages=3, max_chars=10**6, beyond="refuse")
    with pytest.raises(PdfTooManyPagesError) as caught:
        read_pdf_pages(make_pdf(["a", "b", "c", "d"]), limits)
    assert (caught.value.pages, caught.value.limit) == (4, 3)
    assert str(caught.value) == "the PDF has 4 pages; the limit is 3"
    assert caught.value.code == "pdf_too_many_pages"


def test_stored_material_over_the_text_limit_is_refused_with_the_limit() -> None:
    limits = PdfLimits(max_bytes=10**7, max_pages=10, max_chars=100, beyond="refuse")
    with pytest.raises(MaterialTooLongError) as caught:
        read_pdf_pages(make_pdf(["x" * 60, "y" * 60]), limits)
    assert caught.value.limit == 100
    assert caught.value.chars == 120
    assert "more than 100 characters" in str(caught.value)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    limits = PdfLimits(max_bytes=100, max_pages=10, max_chars=100, beyond="cut")
    with pytest.raises(PdfTooLargeError) as caught:
        read_pdf_pages(b"not even a pdf" * 10, limits)
    assert (caught.value.size_bytes, caught.value.limit_bytes) == (140, 100)
    assert str(caught.value) == "the PDF is 140 bytes; the limit is 100 bytes"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(random.Random(7).randbytes(4096), id="random bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(b"%PDF-1.7\n1 0 obj << /Type /Catalog", id="header only"),
        pytest.param(make_pdf(TOPIC_PAGES)[:400], id="truncated"),
    ],
)
def test_corrupt_files_are_unreadable(data: bytes) -> None:
    with pytest.raises(PdfUnreadableError) as caught:
        read_pdf_pages(data)
    assert str(caught.value).startswith("the file is not a readable PDF (")
    assert caught.value.code == "pdf_unreadable"


def test_many_random_files_are_refused_as_unreadable_never_with_another_error() -> None:
    for _ in range(30):
        with pytest.raises(PdfUnreadableError):
            read_pdf_pages(b"%PDF-1.4\n" + os.urandom(2000))


def test_an_encrypted_pdf_is_refused_as_encrypted() -> None:
    with pytest.raises(PdfEncryptedError) as caught:
        read_pdf_pages(make_pdf(["secret notes"], user_password="hunter2"))
    assert "encrypted" in str(caught.value)
    assert caught.value.code == "pdf_encrypted"


def test_a_pdf_of_images_only_has_no_text() -> None:
    with pytest.raises(PdfNoTextError) as caught:
        read_pdf_pages(make_image_pdf(pages=3))
    assert caught.value.pages == 3
    assert "none of the 3 pages read holds text" in str(caught.value)


def test_the_refusals_are_distinct_types_under_one_base() -> None:
    kinds = {PdfUnreadableError, PdfEncryptedError, PdfNoTextError, PdfTooLargeError}
    assert all(issubclass(kind, MaterialError) for kind in kinds)
    assert len({kind.code for kind in kinds}) == len(kinds)


def test_the_default_limits_are_stated() -> None:
    assert (EXTRACT_LIMITS.max_pages, EXTRACT_LIMITS.max_chars, EXTRACT_LIMITS.beyond) == (
        50,
        12_000,
        "cut",
    )
    assert MATERIAL_LIMITS.beyond == "refuse"


def test_page_text_is_tidied_for_storage() -> None:
    assert tidy_page_text("a\x00b   c\r\n\n\n\nd \ud800") == "a b c\n\nd ?"


def test_a_text_upload_is_one_page() -> None:
    assert [(p.number, p.text) for p in text_pages("  notes  ")] == [(1, "notes")]
    with pytest.raises(EmptyMaterialError):
        text_pages(" \n ")
    with pytest.raises(MaterialTooLongError):
        text_pages("x" * 11, limit_chars=10)
