"""Topic name normalisation: what counts as the same topic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.planner.domain import normalise_topic_name


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Work, Energy and Power", "work energy & power"),
        ("Work, Energy, and Power", "WORK, ENERGY AND POWER."),
        ("  Laws   of\tMotion ", "Laws of Motion"),
        ("Newton's Laws", "Newtons laws"),
        ("Newton\u2019s Laws", "Newton's Laws"),
        ("s-Block Elements", "s Block elements"),
        ("Organic Chemistry- Some Basic Principles", "Organic Chemistry: Some Basic Principles"),
        ("Electro\u00adchemistry", "Electrochemistry"),
        ("\uff2f\uff50\uff54\uff49\uff43\uff53", "Optics"),  # full-width letters
        ("Stra\u00dfe", "STRASSE"),
        ("Kinematics\u200b", "Kinematics"),
        ("SI/CI", "SI CI"),
    ],
)
def test_spellings_of_the_same_topic_match(one: str, other: str) -> None:
    assert normalise_topic_name(one) == normalise_topic_name(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Vector", "Vectors"),
        ("p-Block Elements", "Some p-Block Elements"),
        ("Thermodynamics", "Thermodynamics 2"),
        ("Kinetics", "Kinematics"),
    ],
)
def test_different_topics_stay_different(one: str, other: str) -> None:
    assert normalise_topic_name(one) != normalise_topic_name(other)


def test_the_normal_form_is_lower_case_words() -> None:
    assert normalise_topic_name(" d & f Block  Elements! ") == "d and f block elements"
    assert normalise_topic_name("--- !!! ---") == ""


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_normalising_twice_changes_nothing(name: str) -> None:
    once = normalise_topic_name(name)
    assert normalise_topic_name(once) == once
    assert once == once.strip()
    assert "  " not in once
