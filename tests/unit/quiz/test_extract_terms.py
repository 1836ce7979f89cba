"""Extract items over whole terms, on the benchmark's own texts (bench/corpus/topics.toml).

A key or a distractor is a whole noun phrase as the text writes it: a cloze never blanks
"cycle" out of "Calvin cycle" or offers "dioxide" for "carbon dioxide". And a short context
(4 to 6 sentences, as the CAT topics' are) still gives the three items a quiz needs, every
one deliverable and supported by its source sentence, with the bench's own item check.

Run with ``-s`` to see the per-topic table (items built, and valid and supported ones).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.quality_metrics import check_item
from services.quiz.domain import SourceText, extract_questions, key_supported, normalised
from services.quiz.domain.extractive import ExtractedItem, sentences, text_terms
from tests.unit.quiz.test_extractive import assert_deliverable

CORPUS = Path(__file__).resolve().parents[3] / "bench" / "corpus" / "topics.toml"
TOPICS = {
    t["name"]: " ".join(t["context"].split())
    for t in tomllib.loads(CORPUS.read_text(encoding="utf-8"))["topic"]
}
THIN = ("Profit and loss", "Time and work", "Time, speed and distance")


def items_for(topic: str, count: int = 5) -> list[ExtractedItem]:
    return extract_questions(
        [SourceText(TOPICS[topic], "context")], topic=topic, count=count, difficulty="medium"
    )


def terms_of(text: str) -> list[list[str]]:
    return text_terms(text)


def choice_options(items: list[ExtractedItem]) -> set[str]:
    return {
        normalised(o) for item in items if item.kind != "true_false" for o in item.question.options
    }


def test_compounds_are_read_whole_on_corpus_sentences() -> None:
    found = {term for terms in terms_of(TOPICS["Photosynthesis"]) for term in terms}
    assert {"calvin cycle", "carbon dioxide"} <= found
    assert not found & {"cycle", "dioxide", "carbon", "calvin"}
    organelles = {term for terms in terms_of(TOPICS["Cell organelles"]) for term in terms}
    assert {"golgi apparatus", "cellular respiration"} <= organelles
    assert not organelles & {"apparatus", "golgi", "respiration"}
    # A verb after its subject ends the term: "RuBisCO fixes | carbon dioxide",
    # "Mitochondria release | energy", "The nucleus holds | the DNA".
    assert not any(" fixes" in t or "release" in t or "holds" in t for t in found | organelles)


def test_a_name_is_read_whole() -> None:
    found = {term for terms in terms_of(TOPICS["Indian monsoon"]) for term in terms}
    assert {"el nino", "tamil nadu", "intertropical convergence zone"} <= found
    assert not found & {"nino", "nadu"}


def test_a_plural_verb_is_not_read_into_a_term() -> None:
    # "energy passes from", "a leak subtracts from it": a noun and its verb, not a compound.
    for topic in ("Ecosystems and food chains", "Time and work", "Averages"):
        found = {term for terms in terms_of(TOPICS[topic]) for term in terms}
        assert not found & {"energy passes", "leak subtracts", "average rises"}, topic


def test_a_repeated_term_is_no_loop_but_a_loop_still_is() -> None:
    # "selling price ... cost price ... cost price ... selling price": two terms named twice,
    # not "price" four times; the sentence is usable. A word said over and over is not.
    definition = TOPICS["Profit and loss"].split(". ")[0] + "."
    assert sentences(definition) == [definition]
    assert sentences("The cell has ribosomes, ribosomes, ribosomes and ribosomes inside.") == []
    assert sentences("The cell membrane cell membrane cell membrane cell membrane.") == []


def test_a_number_between_words_breaks_the_noun_rule() -> None:
    # "in 1930 began": "began" does not follow "in", so it is no noun and no option.
    options = choice_options(items_for("Indian national movement"))
    assert "began" not in options


def test_photosynthesis_never_offers_half_a_term() -> None:
    items = items_for("Photosynthesis", count=10)
    options = choice_options(items)
    assert options
    assert not options & {"cycle", "dioxide", "calvin", "carbon", "reactions"}
    for item in items:
        assert_deliverable(item)
        assert "carbon ___" not in item.question.text
        assert "Calvin ___" not in item.question.text


def test_a_compound_key_gets_compound_siblings() -> None:
    # "Profit percentage is profit divided by ___": cost price, among the other prices.
    items = items_for("Profit and loss")
    cloze = [i for i in items if i.kind == "cloze"]
    assert cloze, [i.question.text for i in items]
    item = cloze[0]
    assert_deliverable(item)
    assert normalised(item.key) == "cost price"
    assert "marked price" in {normalised(o) for o in item.question.options}
    heart = [i for i in items_for("Human heart") if normalised(i.key) == "mitral valves"]
    assert heart
    assert all(len(normalised(o).split()) == 2 for o in heart[0].question.options)


def test_options_are_whole_distinct_terms_across_the_corpus() -> None:
    for topic in TOPICS:
        for item in items_for(topic):
            assert_deliverable(item)
            if item.kind == "true_false":
                continue
            options = [normalised(o) for o in item.question.options]
            # No option is a word of another (no "price" beside "cost price").
            for option in options:
                for other in options:
                    if option != other:
                        assert f" {option} " not in f" {other} ", (topic, options)


@pytest.mark.parametrize("topic", THIN)
def test_a_thin_cat_context_gives_three_items(topic: str) -> None:
    items = items_for(topic)
    assert len(items) >= 3, [i.question.text for i in items]
    for item in items:
        assert_deliverable(item)
        assert key_supported(item)


def test_every_corpus_topic_gives_three_valid_supported_items() -> None:
    short: list[str] = []
    print()
    for number, (topic, context) in enumerate(TOPICS.items(), start=1):
        items = items_for(topic)
        good = 0
        for item in items:
            question = item.question
            index = question.correct_option_index
            assert index is not None
            check = check_item(
                question_type=question.question_type,
                text=question.text,
                options=question.options,
                correct_option_index=index,
                correct_answer=question.options[index],
                source=context,
            )
            good += check.valid and not check.unsupported
        print(f"{number:2d} {topic[:36]:36s} items={len(items)} valid+supported={good}")
        if good < 3:
            short.append(topic)
    assert short == []
