"""Parsing pasted syllabi as students paste them, and enriching them from the registry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.planner.domain import (
    ParsedTopic,
    SyllabusRegistry,
    enrich_topics,
    load_registry,
    narrow_to_scope,
    normalise_topic_name,
    parse_syllabus,
    schedule_plan,
    topics_from_registry,
)


@pytest.fixture(scope="module")
def registry() -> SyllabusRegistry:
    return load_registry()


def parse(text: str, registry: SyllabusRegistry | None = None) -> list[ParsedTopic]:
    if registry is None:
        return parse_syllabus(text)
    return parse_syllabus(
        text, known_topics=registry.vocabulary(), section_names=registry.section_names()
    )


def names(topics: list[ParsedTopic]) -> list[str]:
    return [t.name for t in topics]


NEET_BULLETS = """\
NEET 2025 \u2013 Physics Syllabus (as per NMC)

•  Physical World and Measurement
•  Kinematics
      ◦ Motion in a straight line
      ◦ Motion in a plane,  projectile motion
•  Laws of Motion
•  Work, Energy and Power
•\tGravitation
• Electrostatics (8%)
• Current Electricity  [10 marks]
"""


def test_neet_bullet_list_with_hollow_sub_bullets(registry: SyllabusRegistry) -> None:
    topics = parse(NEET_BULLETS, registry)
    assert names(topics) == [
        "Physical World and Measurement",
        "Kinematics",
        "Laws of Motion",
        "Work, Energy and Power",
        "Gravitation",
        "Electrostatics",
        "Current Electricity",
    ]
    assert topics[1].subtopics == (
        "Motion in a straight line",
        "Motion in a plane",
        "projectile motion",
    )


JEE_UNITS = """\
JEE (Main) 2025 - Mathematics

UNIT 1: SETS, RELATIONS AND FUNCTIONS
   1.1 Sets and their representation; union, intersection and complement
   1.2 Relations, equivalence relations
UNIT 2: COMPLEX NUMBERS AND QUADRATIC EQUATIONS
   2.1 Complex numbers as ordered pairs of reals
   2.2 Quadratic equations in real and complex number system
Unit 3 - Matrices and Determinants
   a) Matrices, algebra of matrices
   b) Determinants and their properties
   c) Inverse of a matrix
UNIT 4: PERMUTATIONS AND COMBINATIONS
UNIT 5 — BINOMIAL THEOREM AND ITS SIMPLE APPLICATIONS
"""


def test_numbered_jee_units_with_nested_points(registry: SyllabusRegistry) -> None:
    topics = parse(JEE_UNITS, registry)
    assert names(topics) == [
        "Sets, Relations and Functions",
        "Complex Numbers and Quadratic Equations",
        "Matrices and Determinants",
        "Permutations and Combinations",
        "Binomial Theorem and Its Simple Applications",
    ]
    assert topics[0].subtopics == (
        "Sets and their representation",
        "union, intersection and complement",
        "Relations",
        "equivalence relations",
    )
    assert topics[2].subtopics == (
        "Matrices",
        "algebra of matrices",
        "Determinants and their properties",
        "Inverse of a matrix",
    )
    enriched = enrich_topics(topics, registry.topics("jee", "math"))
    assert all(t.registry_name for t in enriched)
    assert enriched[4].prerequisites == ("Permutations and Combinations",)


COMMA_LISTS = """\
Physics: Kinematics, Laws of Motion, Gravitation; Chemistry: Mole Concept, Atomic Structure
Biology - Cell Structure and Function, Human Physiology, Genetics and Evolution
Optics, Current Electricity, and Electronic Devices
Alcohols, Phenols and Ethers
"""


def test_comma_and_semicolon_lists_with_subject_headings(registry: SyllabusRegistry) -> None:
    assert names(parse(COMMA_LISTS, registry)) == [
        "Kinematics",
        "Laws of Motion",
        "Gravitation",
        "Mole Concept",
        "Atomic Structure",
        "Cell Structure and Function",
        "Human Physiology",
        "Genetics and Evolution",
        "Optics",
        "Current Electricity",
        "Electronic Devices",
        "Alcohols, Phenols and Ethers",
    ]


def test_titles_with_commas_stay_whole_even_without_the_registry() -> None:
    topics = parse("Work, Energy and Power\nSets, Relations & Functions\nKinematics, Optics")
    assert names(topics) == [
        "Work, Energy and Power",
        "Sets, Relations & Functions",
        "Kinematics",
        "Optics",
    ]


def test_known_names_with_commas_are_found_inside_longer_lists(registry: SyllabusRegistry) -> None:
    line = "Kinematics, Work, Energy and Power, Aldehydes, Ketones and Carboxylic Acids, Optics"
    assert names(parse(line, registry)) == [
        "Kinematics",
        "Work, Energy and Power",
        "Aldehydes, Ketones and Carboxylic Acids",
        "Optics",
    ]


MESSY = (
    "\ufeff   Syllabus for Class 12 Chemistry (Term 1 + Term 2)\r\n"
    "\r\n"
    " - Solutions  \r\n"
    " -   Electro\u00adchemistry\r\n"
    "  -\u00a0Chemical\u00a0Kinetics\r\n"
    " - Surface   Chemistry  \r\n"
    "   \r\n"
    " *  d & f Block Elements\r\n"
    " * Coordination Compounds\u200b\r\n"
    "Page 2 of 4\r\n"
    " ----------------------------------\r\n"
    " * Haloalkanes and Haloarenes\r\n"
    "\t\n"
    " * Aldehydes,Ketones and Carboxylic Acids\r\n"
    "17\r\n"
)


def test_messy_whitespace_page_numbers_and_separators(registry: SyllabusRegistry) -> None:
    topics = parse(MESSY, registry)
    assert names(topics) == [
        "Solutions",
        "Electrochemistry",
        "Chemical Kinetics",
        "Surface Chemistry",
        "d & f Block Elements",
        "Coordination Compounds",
        "Haloalkanes and Haloarenes",
        "Aldehydes,Ketones and Carboxylic Acids",
    ]
    assert all(not t.subtopics for t in topics)


DUPLICATES = """\
1. Thermodynamics
2. Work, Energy & Power
3. Newton's Laws of Motion
4. THERMODYNAMICS
5. work, energy and power
   - collisions
6. Newtons laws of motion.
7. Thermodynamics:
   - Carnot engine
"""


def test_duplicates_are_merged_with_their_subtopics() -> None:
    topics = parse(DUPLICATES)
    assert names(topics) == ["Thermodynamics", "Work, Energy & Power", "Newton's Laws of Motion"]
    assert topics[0].subtopics == ("Carnot engine",)
    assert topics[1].subtopics == ("collisions",)


UPSC_MARKDOWN = """\
# UPSC GS Paper I

## Polity
1. Indian Constitution: Preamble, Fundamental Rights/Duties, DPSP, Amendment.
2. Local Govt: Panchayats, Municipalities.

## Economy
1. **Government Budgeting.**
2. Food Processing, Land Reforms.
3. Agriculture
   i. Cropping patterns
   ii. Irrigation
   iii. Storage
   iv. Marketing
"""


def test_markdown_headings_roman_numerals_and_colon_lists(registry: SyllabusRegistry) -> None:
    topics = parse(UPSC_MARKDOWN, registry)
    assert names(topics) == [
        "Indian Constitution",
        "Local Govt",
        "Government Budgeting",
        "Food Processing, Land Reforms",
        "Agriculture",
    ]
    assert topics[0].subtopics == ("Preamble", "Fundamental Rights/Duties", "DPSP", "Amendment")
    assert topics[4].subtopics == ("Cropping patterns", "Irrigation", "Storage", "Marketing")
    enriched = enrich_topics(topics, registry.topics("upsc"))
    assert [t.registry_name for t in enriched] == [
        "Indian Constitution",
        "Local Government",
        "Government Budgeting",
        "Food Processing and Land Reforms",
        "Agriculture",
    ]


LETTERED = """\
A. Mechanics
   a) Kinematics
   b) Dynamics
   c) Statics
   d) Fluids
   e) Elasticity
   f) Friction
   g) Gravitation
   h) Rotation
   i) Oscillations
B. Optics
"""


def test_a_lettered_list_reaching_i_stays_lettered() -> None:
    topics = parse(LETTERED)
    assert names(topics) == ["Mechanics", "Optics"]
    assert topics[0].subtopics[-1] == "Oscillations"
    assert len(topics[0].subtopics) == 9


def test_a_three_level_outline_makes_the_middle_level_topics() -> None:
    text = """\
Mechanics
  Kinematics
    - velocity
    - acceleration
  Dynamics
    - Newton's laws
Waves
  - Sound
"""
    topics = parse(text)
    assert names(topics) == ["Kinematics", "Dynamics", "Waves"]
    assert topics[0].subtopics == ("velocity", "acceleration")


TABLE = """\
S.No | Unit | Hours
1 | Kinematics | 6 hrs
2 | Laws of Motion | 8 hrs
3 | Work, Energy and Power | 5
"""


def test_rows_of_a_pasted_table_keep_only_the_topic_cells(registry: SyllabusRegistry) -> None:
    assert (
        names(parse(TABLE, registry))
        == [
            "S.No",
            "Unit",
            "Hours",
            "Kinematics",
            "Laws of Motion",
            "Work, Energy and Power",
        ][3:]
    )


def test_a_single_topic_per_line_with_no_markers() -> None:
    text = "Kinematics\nLaws of Motion\n\n\nGravitation\n"
    assert names(parse(text)) == ["Kinematics", "Laws of Motion", "Gravitation"]


def test_prose_and_noise_lines_are_not_topics() -> None:
    text = "Syllabus\n\n- Kinematics\n- " + "x " * 150 + "\n* * *\n- Optics etc.\n"
    assert names(parse(text)) == ["Kinematics", "Optics"]


def test_empty_text_has_no_topics() -> None:
    assert parse_syllabus("   \n\t\n") == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_into_clean_unique_names(text: str) -> None:
    topics = parse_syllabus(text)
    keys = [normalise_topic_name(t.name) for t in topics]
    assert all(keys)
    assert len(set(keys)) == len(keys)
    assert all(t.name == t.name.strip() and len(t.name) <= 200 for t in topics)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Kinematics", "Optics", "Laws of Motion", "Gravitation", "Waves"]),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    st.sampled_from(["- {}", "* {}", "\u2022 {}", "{}.", "{})", "{}"]),
    st.sampled_from(["\n", "\r\n", "\n\n"]),
)
def test_one_topic_per_line_in_any_list_style(items: list[str], style: str, newline: str) -> None:
    lines = []
    for number, item in enumerate(items, start=1):
        marker = style.format(number) if "." in style or ")" in style else style.format("")
        lines.append(f"{marker} {item}" if marker.strip() else item)
    assert names(parse_syllabus(newline.join(lines))) == items


def test_enrichment_from_registry_topics_aliases_and_subtopics(registry: SyllabusRegistry) -> None:
    parsed = parse(
        "- Mole Concept\n- Atomic Structure\n- Equilibrium\n- Electrochemistry\n- Nernst equation"
        "\n- My own revision notes",
        registry,
    )
    topics = enrich_topics(parsed, registry.topics("neet", "chemistry"))
    by_name = {t.name: t for t in topics}
    mole = by_name["Mole Concept"]  # an alias of "Some Basic Concepts of Chemistry"
    assert mole.registry_name == "Some Basic Concepts of Chemistry"
    assert (mole.weight, mole.hours, mole.difficulty) == (5, 4, "easy")
    # Atomic Structure is an alias of Structure of Atom, which needs the mole concept.
    assert by_name["Atomic Structure"].prerequisites == ("Mole Concept",)
    # Electrochemistry needs Redox Reactions (not pasted: dropped) and Equilibrium.
    assert by_name["Electrochemistry"].prerequisites == ("Equilibrium",)
    # A sub-topic takes a share of its parent's hours and the parent's prerequisites.
    nernst = by_name["Nernst equation"]
    assert nernst.registry_name == "Electrochemistry"
    assert nernst.hours == pytest.approx(6 / 4)
    assert nernst.prerequisites == ("Equilibrium",)
    own = by_name["My own revision notes"]
    assert (own.registry_name, own.weight, own.hours) == (None, 1.0, 2.0)
    schedule_plan(topics, days=10)  # enriched topics are valid scheduler input


def test_unknown_topics_get_hours_from_their_subtopics() -> None:
    parsed = [ParsedTopic(name="Big unit", subtopics=tuple(f"Point {i}" for i in range(10)))]
    assert enrich_topics(parsed)[0].hours == 5.0


def test_topics_from_registry_and_narrowing(registry: SyllabusRegistry) -> None:
    organic = registry.topics("neet", "chemistry", "organic")
    topics = topics_from_registry(organic)
    assert [t.name for t in topics] == [t.name for t in organic]
    # Out-of-scope prerequisites (Chemical Bonding is inorganic) are left out.
    assert topics[0].prerequisites == ()
    parsed = parse("Hydrocarbons, Polymers, Solutions, Something else", registry)
    enriched = enrich_topics(parsed, registry.topics("neet"))
    inside, outside = narrow_to_scope(enriched, organic)
    assert [t.name for t in inside] == ["Hydrocarbons", "Polymers"]
    assert [t.name for t in outside] == ["Solutions", "Something else"]


ORIGINAL_REGISTRY_TEXT = """\
## JEE / chemistry
- Physical Chemistry: Basic Concepts, States of Matter, Atomic Structure, Chemical Bonding, \
Thermodynamics, Solutions, Equilibrium, Redox, Kinetics, Surface Chem.
- Inorganic Chemistry: Periodic Properties, General Principles of Isolation, Hydrogen, s-Block, \
p-Block, d & f Block, Coordination usage, Environmental Chem.
- Organic Chemistry: Purification & Characterization, Basic Principles, Hydrocarbons, \
Polymers, Biomolecules, Chem in Everyday Life, Principles of Practical Chem.
"""


def test_the_original_registry_text_parses_into_registry_topics(
    registry: SyllabusRegistry,
) -> None:
    parsed = parse(ORIGINAL_REGISTRY_TEXT, registry)
    assert len(parsed) == 25
    enriched = enrich_topics(parsed, registry.topics("jee", "chemistry"))
    assert [t.name for t in enriched if t.registry_name is None] == []
    result = schedule_plan(enriched, days=30, hours_per_day=6)
    assert len(result.topics) == 25
