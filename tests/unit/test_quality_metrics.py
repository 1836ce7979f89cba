"""The measures of the quality benchmark (``bench/quality_metrics.py``), on cases of real
output: the looping lesson and the copied explanation of issue 14, as the embedded
SmolLM2-135M wrote them, next to text that says each thing once."""

from __future__ import annotations

import pytest

from bench.quality_metrics import (
    CitationTally,
    TextTally,
    best_supported_option,
    check_item,
    citation_precision_recall,
    content_words,
    distinct_ngram_ratio,
    explanation_fields,
    median,
    near_copy,
    near_copy_pairs,
    repeated_sentence_rate,
    repeated_sentences,
    sentences,
    supported,
)

LOOPING_LESSON = (
    "# Cell organelles\n\nCell organelles are the parts of a cell. They include mitochondria, "
    "chloroplasts, ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, "
    "ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, ribosomes"
)
"""The lesson of issue 14, stored by an autopilot run on the embedded model."""

REPEATED_LINES = (
    "Photosynthesis is the process by which plants make food.\n"
    "Photosynthesis is the process by which plants make food.\n"
    "Photosynthesis is the process by which plants make food.\n"
    "It happens in the chloroplast."
)
"""A streamed answer that says its first line three times."""

PAGE_3 = "The Calvin cycle fixes carbon dioxide into glucose in the stroma of the chloroplast."
COPIED_EXPLANATION = {
    "topic": "Photosynthesis",
    "intuition": PAGE_3,
    "steps": [{"step_number": 1, "title": "Step 1", "content": PAGE_3, "analogy": None}],
    "real_world_example": PAGE_3,
    "common_pitfall": PAGE_3,
    "practice_question": PAGE_3,
    "citations": [],
}
"""The explanation of issue 14: every field holds page 3's sentence."""

GOOD_EXPLANATION = {
    "topic": "Photosynthesis",
    "intuition": "Plants turn light into stored chemical energy. [p. 3]",
    "steps": [
        {"step_number": 1, "title": "Light", "content": "Chlorophyll absorbs light and water "
         "is split, releasing oxygen. [p. 3]"},
        {"step_number": 2, "title": "Sugar", "content": "The Calvin cycle fixes carbon "
         "dioxide into glucose using ATP and NADPH."},
    ],
    "real_world_example": "A pond plant gives off bubbles of oxygen in sunlight.",
    "common_pitfall": "Thinking plants get their food from the soil.",
    "practice_question": "Where in the chloroplast does the Calvin cycle run?",
}  # fmt: skip


def test_the_looping_lesson_has_a_low_distinct_4gram_ratio() -> None:
    ratio = distinct_ngram_ratio(LOOPING_LESSON)
    # 23 4-grams, of which the nine "ribosomes ribosomes ribosomes ribosomes" are one.
    assert ratio == pytest.approx(15 / 23)
    # Said once, the same lesson has every 4-gram distinct.
    fixed = "Cell organelles are the parts of a cell. They include mitochondria, chloroplasts, "
    assert distinct_ngram_ratio(fixed + "ribosomes and the nucleus.") == 1.0


def test_a_word_list_looping_inside_one_sentence_is_not_a_repeated_sentence() -> None:
    # The sentence measure and the n-gram measure catch different loops: both are reported.
    assert repeated_sentences(LOOPING_LESSON) == (0, 3)


def test_repeated_lines_count_as_repeated_sentences() -> None:
    assert repeated_sentences(REPEATED_LINES) == (2, 4)
    assert repeated_sentence_rate(REPEATED_LINES) == pytest.approx(0.5)
    assert repeated_sentence_rate("One idea. Another idea! A third?") == 0.0
    assert repeated_sentence_rate("") == 0.0


def test_markup_and_citation_labels_do_not_make_sentences_differ() -> None:
    text = "1. Water is split. [p. 2]\n- Water is split.\n## Water is split"
    assert sentences(text) == ["water is split"] * 3
    assert repeated_sentences(text) == (2, 3)


def test_short_texts_have_no_4grams() -> None:
    assert distinct_ngram_ratio("three words only") is None


def test_the_copied_explanation_is_all_near_copies() -> None:
    fields = explanation_fields(COPIED_EXPLANATION)
    assert set(fields) == {
        "intuition",
        "steps[0].content",
        "real_world_example",
        "common_pitfall",
        "practice_question",
    }
    assert len(near_copy_pairs(fields)) == 10  # every pair of five fields


def test_distinct_fields_are_not_near_copies() -> None:
    assert near_copy_pairs(explanation_fields(GOOD_EXPLANATION)) == []


def test_near_copy_by_jaccard_or_containment() -> None:
    # One word changed in ten: Jaccard 9/11 >= 0.8.
    a = "the left ventricle pumps oxygenated blood to the body through the aorta"
    b = "the left ventricle pumps oxygenated blood to the body via the aorta"
    assert near_copy(a, b)
    # A field that holds another whole, with more words around it.
    assert near_copy(PAGE_3, f"Remember this for the exam: {PAGE_3} It is tested every year.")
    # A short title inside a field is not a copy; nor is an empty field.
    assert not near_copy("Calvin cycle", PAGE_3)
    assert not near_copy("", PAGE_3)
    assert not near_copy("Mitochondria make ATP.", "Ribosomes make proteins from amino acids.")


def test_citation_precision_and_recall() -> None:
    material = "m1"
    assert citation_precision_recall([(material, 3)], [(material, 3)]) == (1.0, 1.0)
    assert citation_precision_recall([(material, 1), (material, 3)], [(material, 3)]) == (
        0.5,
        1.0,
    )
    # Nothing cited: precision is undefined, recall is 0 (the "citations: []").
    assert citation_precision_recall([], [(material, 3)]) == (None, 0.0)
    # A page of another material is not the known page.
    assert citation_precision_recall([("m2", 3)], [(material, 3)]) == (0.0, 0.0)


def test_citation_tally_is_micro_averaged() -> None:
    tally = CitationTally()
    tally.add([("m", 1)], [("m", 1)])
    tally.add([("m", 1), ("m", 2), ("m", 4)], [("m", 4)])
    tally.add([], [("m", 2)])
    assert (tally.correct, tally.cited, tally.known) == (2, 4, 3)
    assert tally.precision == pytest.approx(0.5)
    assert tally.recall == pytest.approx(2 / 3)
    assert tally.uncited == 1


def test_option_checks() -> None:
    source = "Mitochondria release energy and make ATP. Ribosomes make proteins."
    good = check_item(
        question_type="multiple_choice",
        text="Which organelle makes ATP?",
        options=["Mitochondria", "Ribosomes", "Lysosomes", "Nucleus"],
        correct_option_index=0,
        correct_answer="Mitochondria",
        source=source,
    )
    assert good.valid
    assert good.problems == []
    # What the embedded model writes most: the same option twice, and a blank one.
    repeated = check_item(
        question_type="multiple_choice",
        text="Which organelle makes ATP?",
        options=["Ribosomes", "ribosomes.", "", "Mitochondria"],
        correct_option_index=3,
        correct_answer="Mitochondria",
        source=source,
    )
    assert not repeated.valid
    assert repeated.problems == ["empty_option", "duplicate_options"]
    outside = check_item(
        question_type="multiple_choice",
        text="Which organelle makes ATP?",
        options=["Ribosomes", "Lysosomes", "Nucleus", "Vacuole"],
        correct_option_index=None,
        correct_answer="Mitochondria",
        source=source,
    )
    assert outside.key_outside
    assert not outside.valid


def test_a_key_is_supported_when_its_content_words_are_in_the_source() -> None:
    source = "Mitochondria release energy and make ATP. Ribosomes make proteins."
    assert supported("Mitochondria", source)
    assert supported("the ribosome", source)  # plural and article do not matter
    assert not supported("Golgi apparatus", source)
    assert not supported("the", source)  # no content word: nothing to support
    unsupported = check_item(
        question_type="multiple_choice",
        text="Which organelle packs proteins?",
        options=["Golgi apparatus", "Ribosomes", "Mitochondria", "Nucleus"],
        correct_option_index=0,
        correct_answer="Golgi apparatus",
        source=source,
    )
    assert unsupported.valid
    assert unsupported.unsupported
    # A true/false item is judged by its statement.
    statement = check_item(
        question_type="true_false",
        text="Ribosomes make proteins.",
        options=["True", "False"],
        correct_option_index=0,
        correct_answer="True",
        source=source,
    )
    assert statement.problems == []


def test_content_words_drop_stop_words_and_plurals() -> None:
    assert content_words("The ribosomes make proteins in 2 steps") == [
        "ribosome",
        "make",
        "protein",
        "2",
        "step",
    ]


def test_the_reading_student_picks_the_option_that_completes_a_sentence() -> None:
    source = "Chlorophyll absorbs light. The Calvin cycle fixes carbon dioxide."
    options = ["light", "carbon dioxide", "oxygen", "water"]
    assert best_supported_option(options, source, "The Calvin cycle fixes what?") == 1
    assert best_supported_option(options, source, "What does chlorophyll absorb?") == 0
    assert best_supported_option([], source) == 0


def test_text_tally_pools_sentences_and_averages_4gram_ratios() -> None:
    tally = TextTally()
    tally.add(REPEATED_LINES)
    tally.add("One idea. Another idea.")
    assert tally.repeated_rate == pytest.approx(2 / 6)
    assert tally.distinct_ratio is not None
    assert 0 < tally.distinct_ratio < 1
    assert TextTally().repeated_rate is None


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert median([]) is None


CELL_CONTEXT = (
    "Mitochondria release energy from food by cellular respiration and make ATP. "
    "Chloroplasts are found in plant cells and carry out photosynthesis using chlorophyll. "
    "Ribosomes make proteins by joining amino acids."
)
NEWTON_CONTEXT = (
    "The second law says force equals mass times acceleration. Momentum is mass times "
    "velocity, and impulse is the change in momentum. The SI unit of force is the newton."
)


@pytest.mark.parametrize(
    ("question", "key", "source", "backed"),
    [
        # Items the embedded model wrote on 2026-12-07 (bench/quality.py, the corpus's
        # contexts): each key's words are in the text, but only some answer the question.
        ("What is the primary function of mitochondria?", "protein synthesis", CELL_CONTEXT, False),
        ("What is the primary function of ribosomes?", "protein synthesis", CELL_CONTEXT, True),
        ("What is the primary function of chloroplasts?", "photosynthesis", CELL_CONTEXT, True),
        ("What is the SI unit of momentum?", "newton", NEWTON_CONTEXT, False),
        ("What is the SI unit of mass?", "newton", NEWTON_CONTEXT, False),
        ("What is the SI unit of force?", "newton", NEWTON_CONTEXT, True),
    ],
)  # fmt: skip
def test_a_key_must_meet_the_question_in_one_sentence(
    question: str, key: str, source: str, backed: bool
) -> None:
    assert supported(key, source, question) is backed
    check = check_item(
        question_type="multiple_choice",
        text=question,
        options=[key, "joule", "watt", "pascal"],
        correct_option_index=0,
        correct_answer=key,
        source=source,
    )
    assert check.valid  # well formed: a student can answer it
    assert check.unsupported is not backed
