"""Parsing pasted syllabi as students paste them, and enriching them from the registry."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.planner.domain import (
    ParsedTopic,
    SyllabusRegistry,
    enrich_topics,
    load_registry,
    normalise_topic_name,
    parse_syllabus,
    planned_names,
    planned_topic_name,
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
    enriched = {t.name: t for t in enrich_topics(topics, registry.topics("jee", "math"))}
    assert all(t.registry_name for t in enriched.values())
    binomial = enriched["Binomial Theorem and Its Simple Applications"]
    assert binomial.prerequisites == ("Permutations and Combinations",)


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
        *["Indian Constitution"] * 4,
        *["Local Government"] * 2,
        "Government Budgeting",
        "Food Processing and Land Reforms",
        *["Agriculture"] * 4,
    ]
    assert enriched[0].name == "Indian Constitution: Preamble"
    assert enriched[-1].name == "Agriculture: Marketing"


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


def test_the_items_of_an_unknown_heading_share_its_hours() -> None:
    parsed = [
        ParsedTopic(name="Big unit", subtopics=tuple(f"Point {i}" for i in range(10))),
        ParsedTopic(name="Small unit", subtopics=("One", "Two")),
    ]
    topics = enrich_topics(parsed)
    assert [t.hours for t in topics] == [0.5] * 10 + [1.0, 1.0]
    assert topics[0].name == "Big unit: Point 0"
    assert {t.heading for t in topics} == {"Big unit", "Small unit"}


def test_topics_from_registry(registry: SyllabusRegistry) -> None:
    organic = registry.topics("neet", "chemistry", "organic")
    topics = topics_from_registry(organic)
    assert [t.name for t in topics] == [t.name for t in organic]
    # Out-of-scope prerequisites (Chemical Bonding is inorganic) are left out.
    assert topics[0].prerequisites == ()


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


# --- Syllabi pasted the way students paste them (faults found with unseen syllabi) ----------

GRE_QUANT = """\
GRE Quantitative Reasoning
Arithmetic
- Integers and divisibility
- Exponents and roots
Algebra
- Linear equations
- Quadratic equations
Geometry
- Triangles
- Circles
Data Analysis
- Descriptive statistics
- Probability
"""


def test_the_items_under_headings_are_planned_labelled_with_their_heading() -> None:
    topics = enrich_topics(parse(GRE_QUANT))
    assert [(t.heading, t.name) for t in topics[:3]] == [
        ("Arithmetic", "Arithmetic: Integers and divisibility"),
        ("Arithmetic", "Arithmetic: Exponents and roots"),
        ("Algebra", "Algebra: Linear equations"),
    ]
    assert len(topics) == 8  # the title line is not a topic, nor is any heading
    days = schedule_plan(topics, days=6, hours_per_day=2).plan.schedule
    learned = {t.name for day in days for t in day.topics if t.kind == "learn"}
    assert "Arithmetic: Exponents and roots" in learned
    assert "Arithmetic" not in learned


def test_items_under_a_heading_the_registry_knows_share_its_figures(
    registry: SyllabusRegistry,
) -> None:
    text = "Kinematics\n  - Motion in a straight line\n  - Projectile motion\nLaws of Motion"
    topics = enrich_topics(parse(text, registry), registry.topics("neet", "physics"))
    kinematics = next(t for t in registry.topics("neet", "physics") if t.name == "Kinematics")
    first, second, laws = topics
    assert first.name == "Kinematics: Motion in a straight line"
    assert (first.registry_name, first.weight) == ("Kinematics", kinematics.weight)
    assert first.hours + second.hours == pytest.approx(kinematics.hours)
    # Laws of Motion needs Kinematics: every item of Kinematics comes first.
    assert laws.prerequisites == (first.name, second.name)


def test_a_whole_syllabus_on_one_line_with_inline_numbering() -> None:
    assert names(parse("Part 1: Vectors. Part 2: Matrices. Part 3: Determinants.")) == [
        "Vectors",
        "Matrices",
        "Determinants",
    ]
    assert names(parse("1. Sets 2. Relations 3. Functions")) == ["Sets", "Relations", "Functions"]


def test_a_single_label_or_a_number_inside_a_name_does_not_split_a_line() -> None:
    assert names(parse("Chapter 3 - Optics")) == ["Optics"]
    assert names(parse("1. Newton's 2nd law\n2. Orbits 1. to 5. of the moons")) == [
        "Newton's 2nd law",
        "Orbits 1. to 5. of the moons",
    ]


def test_items_separated_by_semicolons_each_lose_their_own_label() -> None:
    text = "Module 1: Sets; Module 2: Relations; Module 3: Functions"
    assert names(parse(text)) == ["Sets", "Relations", "Functions"]


def test_prose_loses_its_lead_in_and_splits_at_and() -> None:
    assert names(parse("The course covers sets, relations and functions")) == [
        "Sets",
        "Relations",
        "Functions",
    ]


def test_words_that_only_look_like_a_lead_in_stay_in_the_name() -> None:
    assert names(parse("Study of Cells\nLearning Theories\nCase studies in ethics")) == [
        "Study of Cells",
        "Learning Theories",
        "Case studies in ethics",
    ]


def test_plural_label_words_are_names_not_labels() -> None:
    assert names(parse("- Units and Measurements\n- Parts of Speech")) == [
        "Units and Measurements",
        "Parts of Speech",
    ]


HEADINGS = ["Arithmetic", "Data Analysis", "Mechanics of Solids", "Poetry", "Databases"]
ITEMS = ["Integers", "Exponents and roots", "Stress", "Sonnets", "Normal forms", "Joins"]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(HEADINGS), st.lists(st.sampled_from(ITEMS), min_size=1, unique=True)
        ),
        min_size=2,
        max_size=4,
        unique_by=lambda pair: pair[0],
    ),
    st.sampled_from(["{}", "{}:", "## {}", "**{}**"]),
    st.sampled_from(["  - {}", "- {}", "  \u2022 {}", "  {}", "    a) {}"]),
)
def test_every_item_under_every_heading_is_planned(
    outline: list[tuple[str, list[str]]], heading_style: str, item_style: str
) -> None:
    lines = []
    for heading, items in outline:
        lines.append(heading_style.format(heading))
        lines.extend(item_style.format(item) for item in items)
    if heading_style == "{}" and item_style == "- {}":
        return  # unindented bullets under a plain line: nested by marker change, tested above
    assert planned_names(parse_syllabus("\n".join(lines))) == [
        planned_topic_name(heading, item) for heading, items in outline for item in items
    ]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_plans_unique_topics(text: str) -> None:
    topics = enrich_topics(parse_syllabus(text))
    keys = [normalise_topic_name(t.name) for t in topics]
    assert len(set(keys)) == len(keys)
    assert all(t.hours > 0 for t in topics)


def test_a_long_comma_list_is_read_in_about_linear_time(registry: SyllabusRegistry) -> None:
    # The search for known names with commas in them tried every run of parts: 5,000
    # characters took seconds and the 50,000 a request may hold would have taken hours.
    text = ", ".join(f"Point {i} and more" for i in range(1500))
    started = time.perf_counter()
    topics = parse(text, registry)
    assert len(topics) == 1500
    assert time.perf_counter() - started < 2.0
