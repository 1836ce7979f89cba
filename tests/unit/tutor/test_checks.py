"""What a streamed answer shows and keeps (``services.tutor.domain.checks``): tokens held
back until judged, the clean part kept, extracts or a declared failure when every round
loops."""

from __future__ import annotations

import uuid

from exammentor.llm.degenerate_text import LoopWatch
from services.tutor.domain import (
    DEFAULT_STREAM_CHECKS,
    EXTRACT_HEADING,
    PageText,
    StreamChecks,
    final_answer,
    split_passages,
)

CHECKS = StreamChecks(hold_words=6, keep_words=12, min_words=5)


def test_tokens_are_relayed_only_up_to_a_sentence_end_hold_words_behind() -> None:
    watch = LoopWatch()
    assert watch.feed("One two three four five. Six seven") is None
    assert CHECKS.relay_end(watch, 0) == 0  # fewer than hold_words judged after any end
    watch.feed(" eight nine ten eleven twelve thirteen ")
    end = CHECKS.relay_end(watch, 0)
    assert watch.text[:end] == "One two three four five."
    assert CHECKS.relay_end(watch, end) == end


def test_text_without_sentence_ends_is_relayed_in_runs_past_twice_the_window() -> None:
    watch = LoopWatch()
    watch.feed(" ".join(f"w{i}" for i in range(20)) + " ")
    end = CHECKS.relay_end(watch, 0)
    assert 0 < end <= watch.word_start(-CHECKS.hold_words - 1)


def test_every_round_failing_gives_extracts_then_the_longest_clean_part_then_nothing() -> None:
    material = uuid.uuid4()
    pages = [PageText(number=3, text="The range is largest at 45 degrees.")]
    passages = split_passages(pages, material_id=material)
    extract = final_answer(["Short."], passages, CHECKS)
    assert extract.source == "extract"
    assert extract.markdown.startswith(EXTRACT_HEADING)
    assert "> The range is largest at 45 degrees. [p. 3]" in extract.markdown
    longest = "Cells are small. They hold organelles that each do a job."
    kept = final_answer(["Cells are small.", longest], [], CHECKS)
    assert (kept.source, kept.markdown) == ("model", longest)
    assert final_answer(["Cells.", ""], [], CHECKS).source == "unusable"


def test_a_lessons_keep_threshold_follows_its_length() -> None:
    assert DEFAULT_STREAM_CHECKS.for_lesson(300).keep_words == DEFAULT_STREAM_CHECKS.keep_words
    assert DEFAULT_STREAM_CHECKS.for_lesson(90).keep_words == 30
    assert DEFAULT_STREAM_CHECKS.for_lesson(50).keep_words == DEFAULT_STREAM_CHECKS.min_words
