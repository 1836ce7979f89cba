"""BM25 ranking of passages, and the token budget of the chosen ones."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from services.tutor.domain import (
    Passage,
    rank_passages,
    read_pdf_pages,
    select_passages,
    split_passages,
    terms,
)
from services.tutor.domain.ranking import LABEL_TOKENS
from tests.unit.tutor.pdfs import TOPIC_PAGES, make_pdf


def handout() -> list[Passage]:
    return split_passages(read_pdf_pages(make_pdf(TOPIC_PAGES)).pages, material_id=uuid.uuid4())


def passage(text: str, page: int = 1, position: int = 0) -> Passage:
    return Passage(material_id=None, page=page, position=position, text=text)


def test_a_question_about_page_3_ranks_page_3_first() -> None:
    ranked = rank_passages("How does photosynthesis fix carbon dioxide?", handout())
    assert ranked[0].passage.page == 3
    assert all(r.passage.page == 3 for r in ranked)  # the other pages share no content word


def test_passages_sharing_no_word_with_the_question_are_not_returned() -> None:
    assert rank_passages("quantum chromodynamics", handout()) == []
    assert rank_passages("what is the", handout()) == []  # only stop words
    assert rank_passages("photosynthesis", []) == []


def test_stop_words_and_case_do_not_count() -> None:
    assert terms("What IS the Calvin-cycle?") == ["calvin", "cycle"]


def test_more_matching_passages_rank_above_fewer_even_in_a_tiny_set() -> None:
    # Two passages: BM25Okapi's idf is 0 for a word in one of two, so the order comes from
    # the number of the question's words a passage holds.
    passages = [passage("osmosis only here", 1, 0), passage("osmosis and diffusion", 2, 1)]
    ranked = rank_passages("osmosis diffusion", passages)
    assert [r.passage.page for r in ranked] == [2, 1]


def test_equal_scores_keep_reading_order() -> None:
    passages = [passage("mitosis", page, page) for page in range(1, 5)]
    passages += [passage("unrelated words", 9, 9), passage("more filler", 10, 10)]
    ranked = rank_passages("mitosis", passages)
    assert [r.passage.page for r in ranked] == [1, 2, 3, 4]


_TEXT = st.lists(st.sampled_from(["cell", "energy", "light", "water", "gene", "x"]), max_size=40)


@given(
    st.lists(_TEXT.map(" ".join), min_size=1, max_size=12),
    _TEXT.map(" ".join),
    st.integers(min_value=0, max_value=200),
    st.none() | st.integers(min_value=0, max_value=5),
)
@settings(max_examples=300, deadline=None)
def test_the_choice_fits_the_budget_and_is_the_ranking_in_order(
    texts: list[str], question: str, budget: int, most: int | None
) -> None:
    passages = [passage(text, i + 1, i) for i, text in enumerate(texts) if text.strip()]
    chosen = select_passages(question, passages, budget_tokens=budget, max_passages=most)
    assert sum(r.passage.tokens + LABEL_TOKENS for r in chosen) <= budget
    assert most is None or len(chosen) <= most
    order = [r.passage.position for r in rank_passages(question, passages)]
    picked = [r.passage.position for r in chosen]
    assert picked == [p for p in order if p in picked]


def test_a_passage_too_long_for_the_room_left_does_not_block_a_shorter_one() -> None:
    long = passage("photosynthesis " * 40 + "light", 1, 0)  # the best match, 150 tokens
    short = passage("photosynthesis light", 2, 1)
    chosen = select_passages("photosynthesis light", [long, short], budget_tokens=40)
    assert [r.passage.page for r in chosen] == [2]
