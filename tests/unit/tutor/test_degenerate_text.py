"""The loop and copy detector (``exammentor.llm.degenerate_text``) on real output of the embedded
model (SmolLM2-135M, recorded 2026-12-07 through the tutor's own prompts at temperature 0 and
at the retry rounds' sampling), and on clean text that must pass."""

from __future__ import annotations

import pytest

from exammentor.llm.degenerate_text import (
    LoopWatch,
    clean_prefix,
    find_degeneration,
    near_copies,
    repeated_sentence_rate,
    word_count,
)

# ---- recorded SmolLM2-135M output (cut after the loop is evident) ---------------------------

CELL_ORGANELLES = (
    "Cell organelles are the structures within cells that perform various functions. They "
    "include the nucleus, mitochondria, ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, "
    "ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, ribosomes, rib"
)
"""tutor.lesson "Cell organelles", round 1 (greedy): the issue's stored lesson."""

PHOTOSYNTHESIS = (
    "Photosynthesis is a vital process that occurs in the chloroplasts of plant cells. It is "
    "a complex process that involves the conversion of light energy into chemical energy. The "
    "process of photosynthesis occurs in the chloroplasts of plant cells.\n\nThe process of "
    "photosynthesis is a vital process that occurs in the chloroplasts of plant cells. It is a "
    "process that occurs in the presence of light energy. The light energy is used to convert "
    "carbon dioxide and water into glucose and oxygen."
)
"""tutor.lesson "Photosynthesis", round 1: a reworded sentence repeated."""

PHOTOSYNTHESIS_RETRY = (
    "Photosynthetic organisms are those that convert carbon dioxide into organic molecules "
    "using sunlight as their primary energy source but also obtain other nutrients from water "
    "and air, which is a double-step process in order to maintain themselves alive thanks to "
    "photosynthesis.. The main components of photosynthetic cells include chloroplasts (the "
    "site where light reactions take place), chlorophyll A pigment produced by photoparasites "
    "algae. Photosynthesis occurs primarily on the thylakoid membrane within plastids but "
    "involves enzymes involved, which is a double-step process in order for it can be divided "
    "into two parts and separate each part so to speak.."
)
"""The same lesson, round 2 (temperature 0.6, seed 2, penalties): a phrase loop."""

NEWTON = (
    "Newton's laws of motion are fundamental principles that govern the behavior of objects "
    "under the influence of forces.\n\nThe first law of motion is known as the law of inertia. "
    "This law states that an object at rest will remain at rest.\n\nThe second law of motion "
    "is known as the law of force. This law states that the acceleration of an object is "
    "directly proportional to the applied force."
)
"""tutor.lesson "Newton's laws of motion", round 1: one sentence pattern per 'law'."""

MATERIAL = (
    "[p. 3] Chapter three. The range of a projectile launched with speed u at angle theta is u "
    "squared times sin two theta divided by g. The range is largest at 45 degrees."
)
STREAM_ECHO = (
    "<<<MATERIAL>>\n[p. 3] Chapter three. The range of a projectile launched with speed u at "
    "angle theta is u squared times sin two theta divided by g. The range is largest at 45 "
    "degrees.\n<<<END OF MATERIAL>>\nThe range of a projectile is the maximum displacement"
)
"""tutor.stream on a 3-page PDF: the answer starts by copying the prompt's material block."""

SAME_SENTENCE = (
    "The range of a projectile is the maximum displacement of an object under the influence of "
    "a force perpendicular to the direction of the projectile."
)
EXPLAIN_FIELDS = {
    "intuition": SAME_SENTENCE.replace("force perpendicular", "force that is perpendicular"),
    "s1": SAME_SENTENCE,
    "s2": SAME_SENTENCE,
    "s3": SAME_SENTENCE,
    "analogy": SAME_SENTENCE,
    "example": SAME_SENTENCE,
    "pitfall": SAME_SENTENCE,
    "question": SAME_SENTENCE,
}
"""tutor.explain on the 3-page PDF, round 1: one sentence in every field (the issue's report)."""

EXPLAIN_RETRY_FIELDS = {
    "intuition": "javascript",
    "s1": "WhatIsTheValueOfThisInlineJS, whatisthevalueofthis?  What is the range of a projectile?",
    "example": "The concept of projectile motion is based on the idea that a body can be acted "
    "upon by an external force such as gravity or friction.",
    "pitfall": "The concept of projectile motion is based on the idea that a body can be acted "
    "upon by an external force such as gravity or friction.",
}
"""tutor.explain, repair round 2 (temperature 0.6): example and pitfall are one text."""

# ---- clean text ---------------------------------------------------------------------------

CLEAN_LESSON = (
    "# Cell organelles\n\nOrganelles are the working parts of a cell. The nucleus keeps the "
    "DNA and controls which proteins are made. Mitochondria release energy from glucose in "
    "aerobic respiration, so active muscle cells hold many of them. Ribosomes read messenger "
    "RNA and join amino acids into proteins. Chloroplasts, found only in plants and algae, "
    "capture light for photosynthesis.\n\n**Example:** a liver cell that detoxifies drugs has "
    "a large smooth endoplasmic reticulum.\n\n**Recap:** each organelle does one job; the cell "
    "lives because they work together. Very very small parts matter."
)


@pytest.mark.parametrize(
    ("text", "kind", "kept"),
    [
        (
            CELL_ORGANELLES,
            "word_list",
            "Cell organelles are the structures within cells that perform various functions.",
        ),
        (PHOTOSYNTHESIS, "repeated_sentence", PHOTOSYNTHESIS.split(" The process", maxsplit=1)[0]),
        (
            PHOTOSYNTHESIS_RETRY,
            "repeated_phrase",
            PHOTOSYNTHESIS_RETRY.split(" Photosynthesis", maxsplit=1)[0],
        ),
        (NEWTON, "repeated_phrase", NEWTON.split("\n\nThe second", maxsplit=1)[0]),
    ],
    ids=["word-list", "reworded-sentence", "retry-phrase", "sentence-pattern"],
)
def test_real_loops_of_the_embedded_model_are_caught_and_cut_before_the_loop(
    text: str, kind: str, kept: str
) -> None:
    found = find_degeneration(text)
    assert found is not None
    assert found.kind == kind
    assert clean_prefix(text, found) == kept
    assert find_degeneration(kept) is None


def test_an_answer_that_copies_the_material_is_an_echo_of_the_prompt() -> None:
    prompt = f"Explain the range.\n<<<MATERIAL>>>\n{MATERIAL}\n<<<END OF MATERIAL>>>"
    found = find_degeneration(STREAM_ECHO, prompt=prompt)
    assert found is not None
    assert found.kind == "prompt_echo"
    assert clean_prefix(STREAM_ECHO, found) == ""
    # A short quote of the material is not an echo.
    quote = "As your notes say, the range is largest at 45 degrees."
    assert find_degeneration(quote, prompt=MATERIAL) is None


def test_one_sentence_in_several_fields_is_a_near_copy() -> None:
    pairs = near_copies(EXPLAIN_FIELDS)
    assert ("intuition", "s1") in pairs
    assert ("s1", "question") in pairs
    assert near_copies(EXPLAIN_RETRY_FIELDS) == [("example", "pitfall")]
    distinct = {
        "intuition": "Light energy becomes chemical energy in the chloroplast.",
        "s1": "Chlorophyll absorbs red and blue light and passes the energy on.",
        "s2": "The Calvin cycle fixes carbon dioxide into three-carbon sugars.",
        "pitfall": "Thinking that the oxygen released comes from carbon dioxide.",
        "question": "Which molecule is split in the light reactions, and what is released?",
    }
    assert near_copies(distinct) == []


def test_clean_text_passes_whole_and_delta_by_delta() -> None:
    assert find_degeneration(CLEAN_LESSON) is None
    watch = LoopWatch()
    for i in range(0, len(CLEAN_LESSON), 3):
        assert watch.feed(CLEAN_LESSON[i : i + 3]) is None
    assert watch.finish() is None
    assert watch.word_count == word_count(CLEAN_LESSON)


def test_the_stream_is_stopped_within_a_few_words_of_the_loop() -> None:
    watch = LoopWatch()
    fed = ""
    for piece in CELL_ORGANELLES.split(" "):
        fed += piece + " "
        if watch.feed(piece + " ") is not None:
            break
    assert watch.found is not None
    # Stopped at the third "ribosomes": the rest of the 512-token loop is never generated.
    assert fed.count("ribosomes") == 3
    assert watch.found.start == CELL_ORGANELLES.index("ribosomes, ribosomes") + len("ribosomes, ")


def test_a_word_split_across_deltas_is_judged_once_complete() -> None:
    watch = LoopWatch()
    for delta in ("ribo", "somes, ribo", "somes, ", "ribo"):
        assert watch.feed(delta) is None
    assert watch.feed("somes") is None  # the word may still go on
    assert watch.word_count == 2
    assert watch.finish() is not None


@pytest.mark.parametrize(
    "text",
    [
        "The answer is yes, yes: it is.",  # a word twice is no list
        "Step by step, work the example; then work it again on your own.",
        "1. Force. 2. Mass. 3. Acceleration.",
    ],
)
def test_short_natural_repeats_are_not_loops(text: str) -> None:
    assert find_degeneration(text) is None


def test_repeated_sentence_rate_counts_word_for_word_repeats() -> None:
    assert repeated_sentence_rate([CLEAN_LESSON]) == 0.0
    looped = "Cells divide by mitosis. Cells divide by mitosis. Meiosis makes gametes for sex."
    assert repeated_sentence_rate([looped]) == pytest.approx(1 / 3)


def test_the_prompts_fence_in_an_answer_is_an_echo_wherever_it_starts() -> None:
    watch = LoopWatch(markers=("<<<",))
    assert watch.feed("The range grows with speed.\n<") is None
    found = watch.feed("<<MATERIAL>>")
    assert found is not None
    assert found.kind == "prompt_echo"
    assert clean_prefix(watch.text, found) == "The range grows with speed."
