"""Passages: each on one page, nothing lost or repeated, within the word limit."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from services.tutor.domain import (
    PageText,
    PassagePolicy,
    attached_passages,
    read_pdf_pages,
    split_passages,
)
from tests.unit.tutor.pdfs import TOPIC_PAGES, make_pdf

_WORD = st.text(alphabet="abcdefghij.!?", min_size=1, max_size=8)
_PAGE_TEXT = st.lists(_WORD, max_size=80).map(" ".join) | st.text(max_size=300)


@st.composite
def paged_material(draw: st.DrawFn) -> list[PageText]:
    texts = draw(st.lists(_PAGE_TEXT, min_size=1, max_size=6))
    first = draw(st.integers(min_value=1, max_value=20))
    return [PageText(number=first + i, text=text) for i, text in enumerate(texts)]


@given(paged_material(), st.integers(min_value=1, max_value=30))
@settings(max_examples=300, deadline=None)
def test_a_passage_never_claims_a_page_it_does_not_contain(
    pages: list[PageText], max_words: int
) -> None:
    passages = split_passages(pages, policy=PassagePolicy(max_words=max_words))
    for page in pages:
        mine = [p for p in passages if p.page == page.number]
        # A page's passages, joined, are exactly the page's words: every passage that names
        # the page holds text from it, and no text is lost or repeated.
        assert " ".join(p.text for p in mine).split() == page.text.split()
    assert all(len(p.text.split()) <= max_words for p in passages)
    assert [p.position for p in passages] == list(range(len(passages)))


def test_sentences_stay_whole_when_they_fit() -> None:
    page = PageText(number=4, text="One two three. Four five six. Seven eight nine ten.")
    passages = split_passages([page], policy=PassagePolicy(max_words=7))
    assert [p.text for p in passages] == ["One two three. Four five six.", "Seven eight nine ten."]
    assert {p.page for p in passages} == {4}


def test_a_long_sentence_is_split_between_words() -> None:
    page = PageText(number=1, text=" ".join(f"w{i}" for i in range(10)))
    passages = split_passages([page], policy=PassagePolicy(max_words=4))
    assert [p.text for p in passages] == ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"]


def test_pdf_pages_become_passages_of_their_page() -> None:
    material = uuid.uuid4()
    passages = split_passages(read_pdf_pages(make_pdf(TOPIC_PAGES)).pages, material_id=material)
    assert [p.page for p in passages] == [1, 2, 3, 4, 5]
    assert passages[2].text.startswith("Photosynthesis.")
    assert {p.material_id for p in passages} == {material}


def test_attached_text_is_page_one_without_a_material() -> None:
    passages = attached_passages("Osmosis moves water.\n\nDiffusion moves solutes.")
    assert [(p.page, p.material_id) for p in passages] == [(1, None)]
    assert attached_passages("  \n ") == []
