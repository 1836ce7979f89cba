"""The syllabus registry: the built-in files, lookups, and the checks made on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.planner.domain import (
    RegistryError,
    Scope,
    SyllabusRegistry,
    UnknownScopeError,
    build_registry,
    learning_order,
    load_registry,
    normalise_topic_name,
    topics_from_registry,
)

# The original router's registry (reference/syllabi.md). Plain lists are topics; for the
# "Heading: a, b" lines the heading is a topic with sub-topics, except JEE chemistry, whose
# headings are the sub-subjects and whose items are topics.
ORIGINAL_TOPICS: dict[tuple[str, str, str | None], list[str]] = {
    ("neet", "biology", None): [
        "Diversity in Living World",
        "Structural Organisation in Animals and Plants",
        "Cell Structure and Function",
        "Plant Physiology",
        "Human Physiology",
        "Reproduction",
        "Genetics and Evolution",
        "Biology and Human Welfare",
        "Biotechnology and Its Applications",
        "Ecology and Environment",
    ],
    ("neet", "physics", None): [
        "Physical World and Measurement",
        "Kinematics",
        "Laws of Motion",
        "Work, Energy and Power",
        "Motion of System of Particles and Rigid Body",
        "Gravitation",
        "Properties of Bulk Matter",
        "Thermodynamics",
        "Behaviour of Perfect Gas and Kinetic Theory",
        "Oscillations and Waves",
        "Electrostatics",
        "Current Electricity",
        "Magnetic Effects of Current and Magnetism",
        "Electromagnetic Induction and Alternating Currents",
        "Electromagnetic Waves",
        "Optics",
        "Dual Nature of Matter and Radiation",
        "Atoms and Nuclei",
        "Electronic Devices",
    ],
    ("neet", "chemistry", "inorganic"): [
        "Classification of Elements and Periodicity in Properties",
        "Chemical Bonding and Molecular Structure",
        "Hydrogen",
        "s-Block Elements (Alkali and Alkaline earth metals)",
        "Some p-Block Elements",
        "General Principles and Processes of Isolation of Elements",
        "p-Block Elements",
        "d and f Block Elements",
        "Coordination Compounds",
    ],
    ("neet", "chemistry", "organic"): [
        "Organic Chemistry- Some Basic Principles and Techniques",
        "Hydrocarbons",
        "Haloalkanes and Haloarenes",
        "Alcohols, Phenols and Ethers",
        "Aldehydes, Ketones and Carboxylic Acids",
        "Organic Compounds Containing Nitrogen",
        "Biomolecules",
        "Polymers",
        "Chemistry in Everyday Life",
    ],
    ("neet", "chemistry", "physical"): [
        "Some Basic Concepts of Chemistry",
        "Structure of Atom",
        "States of Matter: Gases and Liquids",
        "Thermodynamics",
        "Equilibrium",
        "Redox Reactions",
        "Solid State",
        "Solutions",
        "Electrochemistry",
        "Chemical Kinetics",
        "Surface Chemistry",
    ],
    ("jee", "math", None): [
        "Sets, Relations and Functions",
        "Complex Numbers and Quadratic Equations",
        "Matrices and Determinants",
        "Permutations and Combinations",
        "Mathematical Induction",
        "Binomial Theorem and its Simple Applications",
        "Sequences and Series",
        "Limit, Continuity and Differentiability",
        "Integral Calculus",
        "Differential Equations",
        "Coordinate Geometry",
        "Three Dimensional Geometry",
        "Vector Algebra",
        "Statistics and Probability",
        "Trigonometry",
        "Mathematical Reasoning",
    ],
    ("jee", "physics", None): [
        "Physics and Measurement",
        "Kinematics",
        "Laws of Motion",
        "Work, Energy and Power",
        "Rotational Motion",
        "Gravitation",
        "Properties of Solids and Liquids",
        "Thermodynamics",
        "Kinetic Theory of Gases",
        "Oscillations and Waves",
        "Electrostatics",
        "Current Electricity",
        "Magnetic Effects of Current and Magnetism",
        "Electromagnetic Induction and Alternating Currents",
        "Electromagnetic Waves",
        "Optics",
        "Dual Nature of Matter and Radiation",
        "Atoms and Nuclei",
        "Electronic Devices",
        "Communication Systems",
    ],
    ("jee", "chemistry", "physical"): [
        "Basic Concepts",
        "States of Matter",
        "Atomic Structure",
        "Chemical Bonding",
        "Thermodynamics",
        "Solutions",
        "Equilibrium",
        "Redox",
        "Kinetics",
        "Surface Chem.",
    ],
    ("jee", "chemistry", "inorganic"): [
        "Periodic Properties",
        "General Principles of Isolation",
        "Hydrogen",
        "s-Block",
        "p-Block",
        "d & f Block",
        "Coordination usage",
        "Environmental Chem.",
    ],
    ("jee", "chemistry", "organic"): [
        "Purification & Characterization",
        "Basic Principles",
        "Hydrocarbons",
        # "Organic Compounds with Halogens/Oxygen/Nitrogen" is three topics in the registry.
        "Organic Compounds with Halogens",
        "Organic Compounds with Oxygen",
        "Organic Compounds with Nitrogen",
        "Polymers",
        "Biomolecules",
        "Chem in Everyday Life",
        "Principles of Practical Chem.",
    ],
}

ORIGINAL_TOPICS_WITH_SUBTOPICS: dict[tuple[str, str], dict[str, list[str]]] = {
    ("upsc", "history"): {
        "Ancient India": ["Prehistoric", "Indus Valley", "Vedic", "Mauryan", "Gupta", "Post-Gupta"],
        "Medieval India": ["Delhi Sultanate", "Mughals", "Vijaynagar", "Bhakti/Sufi movements"],
        "Modern India": [
            "European penetration",
            "British expansion",
            "1857 Revolt",
            "Freedom Struggle (Gandhian era)",
            "Partition",
            "Post-Independence consolidation",
        ],
        "Art & Culture": [
            "Architecture",
            "Sculpture",
            "Painting",
            "Music",
            "Dance",
            "Literary works",
        ],
        "World History": ["Industrial Revolution", "World Wars", "Cold War", "Decolonization"],
    },
    ("upsc", "geography"): {
        "Physical Geography": ["Geomorphology", "Climatology", "Oceanography", "Biogeography"],
        "Human Geography": ["Perspectives", "Economic", "Population", "Settlement"],
        "Indian Geography": [
            "Physical setting",
            "Resources",
            "Agriculture",
            "Industry",
            "Transport",
            "Trade via maps",
        ],
    },
    ("upsc", "polity"): {
        "Indian Constitution": ["Preamble", "Fundamental Rights/Duties", "DPSP", "Amendment"],
        "System of Government": ["Parliamentary vs Presidential", "Federal vs Unitary"],
        "Central & State Govt": ["Executive", "Legislature", "Judiciary"],
        "Local Govt": ["Panchayats", "Municipalities"],
        "Constitutional & Non-Constitutional Bodies": [],
        "Governance": ["Rights issues", "Public Policy", "schemes"],
    },
    ("upsc", "economy"): {
        "Planning, Mobilization of Resources, Growth, Development": [],
        "Government Budgeting": [],
        "Agriculture": ["Cropping patterns", "Irrigation", "Storage", "Marketing", "E-technology"],
        "Food Processing, Land Reforms": [],
        "Liberalization, Infrastructure, Investment Models": [],
    },
    ("cat", "quant"): {
        "Arithmetic": [
            "Percentages",
            "Profit & Loss",
            "SI/CI",
            "Time & Work",
            "TSD",
            "Averages",
            "Mixtures",
        ],
        "Algebra": [
            "Linear/Quadratic Equations",
            "Inequalities",
            "Logarithms",
            "Functions",
            "Progressions",
        ],
        "Geometry & Mensuration": ["Triangles", "Circles", "Polygons", "Coordinate Geometry"],
        "Number System": ["Properties", "Divisibility", "Remainders"],
        "Modern Math": ["P&C", "Probability"],
    },
    ("cat", "verbal"): {
        "Reading Comprehension": ["Philosophy", "Science", "Economics", "Arts passages"],
        "Verbal Ability": [
            "Para Jumbles",
            "Para Summary",
            "Odd Sentence Out",
            "Sentence Completion",
        ],
    },
    ("cat", "dilr"): {
        "Data Interpretation": ["Tables", "Bar/Line/Pie Charts", "Caselets"],
        "Logical Reasoning": [
            "Arrangements (Linear/Circular)",
            "Team Selection",
            "Blood Relations",
            "Games & Tournaments",
            "Cubes",
            "Venn Diagrams",
        ],
    },
}


@pytest.fixture(scope="module")
def registry() -> SyllabusRegistry:
    return load_registry()


def keys_of(names: list[str]) -> list[str]:
    return [normalise_topic_name(name) for name in names]


@pytest.mark.parametrize(("scope", "expected"), ORIGINAL_TOPICS.items(), ids=str)
def test_every_topic_of_the_original_registry_is_there(
    registry: SyllabusRegistry, scope: tuple[str, str, str | None], expected: list[str]
) -> None:
    topics = registry.topics(*scope)
    found = [{normalise_topic_name(n) for n in t.names()} for t in topics]
    assert len(topics) == len(expected)
    for key, names in zip(keys_of(expected), found, strict=True):
        assert key in names


@pytest.mark.parametrize(("scope", "expected"), ORIGINAL_TOPICS_WITH_SUBTOPICS.items(), ids=str)
def test_headed_lines_of_the_original_are_topics_with_subtopics(
    registry: SyllabusRegistry, scope: tuple[str, str], expected: dict[str, list[str]]
) -> None:
    topics = registry.topics(*scope)
    assert len(topics) == len(expected)
    for topic, (name, subtopics) in zip(topics, expected.items(), strict=True):
        assert normalise_topic_name(name) in {normalise_topic_name(n) for n in topic.names()}
        if subtopics:
            assert keys_of(list(topic.subtopics)) == keys_of(subtopics)


def test_every_subject_has_usable_figures_and_an_acyclic_order(
    registry: SyllabusRegistry,
) -> None:
    assert [exam.key for exam in registry.exams] == ["cat", "jee", "neet", "upsc"]
    for exam in registry.exams:
        for subject in exam.subjects:
            topics = topics_from_registry(subject.topics)
            assert all(0 < t.weight <= 10 and 0 < t.hours <= 40 for t in topics)
            order = [topics[i].name for i in learning_order(topics)]
            for position, name in enumerate(order):
                before = set(order[:position])
                prerequisites = next(t for t in topics if t.name == name).prerequisites
                assert set(prerequisites) <= before


def test_neet_chemistry_has_its_three_sub_subjects(registry: SyllabusRegistry) -> None:
    chemistry = next(s for s in registry.exam("neet").subjects if s.key == "chemistry")
    assert [p.key for p in chemistry.sub_subjects] == ["inorganic", "organic", "physical"]
    # Prerequisites may cross sub-subjects of one subject.
    organic = registry.topics("neet", "chemistry", "organic")
    assert organic[0].prerequisites == ("Chemical Bonding and Molecular Structure",)
    assert organic[0].sub_subject == "organic"


@pytest.mark.parametrize(
    ("asked", "scope"),
    [
        (("NEET",), Scope("neet")),
        (("neet-ug", "Chemistry"), Scope("neet", "chemistry")),
        (("NEET UG", "chem", "Organic Chemistry"), Scope("neet", "chemistry", "organic")),
        (("IIT JEE", "Maths"), Scope("jee", "math")),
        (("jee", "mathematics", None), Scope("jee", "math")),
        (("Civil Services", "Indian Polity"), Scope("upsc", "polity")),
        (("cat", "LRDI"), Scope("cat", "dilr")),
        (("CAT", "Quantitative Aptitude", ""), Scope("cat", "quant")),
    ],
)
def test_scopes_resolve_by_key_name_or_alias(
    registry: SyllabusRegistry, asked: tuple[str, ...], scope: Scope
) -> None:
    assert registry.resolve_scope(*asked) == scope


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (("gre",), "unknown exam 'gre'; known: cat, jee, neet, upsc"),
        (("neet", "maths"), "unknown subject 'maths' for neet; known: biology, physics, chemistry"),
        (
            ("jee", "physics", "organic"),
            "unknown sub-subject 'organic' for jee/physics; known: none",
        ),
        (("neet", None, "organic"), "sub-subject 'organic' given without a subject"),
    ],
)
def test_unknown_scopes_are_refused_with_what_is_known(
    registry: SyllabusRegistry, asked: tuple[str | None, ...], message: str
) -> None:
    with pytest.raises(UnknownScopeError, match=message.replace("(", r"\(")):
        registry.resolve_scope(*asked)  # type: ignore[arg-type]


def test_vocabulary_and_section_names_feed_the_parser(registry: SyllabusRegistry) -> None:
    words = registry.vocabulary("neet")
    assert "work energy and power" in words
    assert "mole concept" in words  # an alias
    assert "photosynthesis in higher plants" in words  # a sub-topic
    assert "arithmetic" not in words
    assert {"organic chemistry", "biology", "chem"} <= registry.section_names("neet")


def document(body: str, exam: str = "demo") -> str:
    return f'exam = "{exam}"\nname = "Demo"\n{body}'


TWO_TOPICS = """
[subjects.maths]
name = "Maths"

[[subjects.maths.topics]]
name = "Algebra"
weight = 5
hours = 4

[[subjects.maths.topics]]
name = "Calculus"
weight = 8
hours = 6
difficulty = "hard"
prerequisites = ["algebra"]
"""


def test_a_registry_from_documents_resolves_prerequisites_to_names() -> None:
    registry = build_registry([("demo.toml", document(TWO_TOPICS))])
    calculus = registry.topics("demo", "maths")[1]
    assert calculus.prerequisites == ("Algebra",)
    assert (calculus.exam, calculus.subject, calculus.sub_subject) == ("demo", "maths", None)


def test_a_prerequisite_cycle_is_refused_naming_the_cycle() -> None:
    body = """
[subjects.physics]
name = "Physics"

[[subjects.physics.topics]]
name = "Kinematics"
weight = 1
hours = 1
prerequisites = ["Laws of Motion"]

[[subjects.physics.topics]]
name = "Laws of Motion"
weight = 1
hours = 1
prerequisites = ["Work, Energy and Power"]

[[subjects.physics.topics]]
name = "Work, Energy and Power"
weight = 1
hours = 1
prerequisites = ["Kinematics"]

[[subjects.physics.topics]]
name = "Optics"
weight = 1
hours = 1
"""
    with pytest.raises(RegistryError) as caught:
        build_registry([("cyclic.toml", document(body))])
    assert str(caught.value) == (
        "cyclic.toml: demo/physics: prerequisite cycle Kinematics -> Laws of Motion -> "
        "Work, Energy and Power -> Kinematics (each topic requires the next)"
    )


def test_a_topic_requiring_itself_is_a_cycle() -> None:
    body = TWO_TOPICS.replace('prerequisites = ["algebra"]', 'prerequisites = ["Calculus"]')
    with pytest.raises(RegistryError, match="cycle Calculus -> Calculus"):
        build_registry([("self.toml", document(body))])


def test_an_unknown_prerequisite_is_refused_with_a_suggestion() -> None:
    body = TWO_TOPICS.replace('["algebra"]', '["Algebr"]')
    with pytest.raises(
        RegistryError, match=r"unknown prerequisite 'Algebr' \(did you mean 'Algebra'\?\)"
    ):
        build_registry([("typo.toml", document(body))])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("exam = [", "not valid TOML"),
        ('exam = "x"\nsubjects = { maths = { name = "M" } }', "the subject has no topics"),
        (
            document(TWO_TOPICS.replace("weight = 5", "weight = 0")),
            "weight: Input should be greater than 0",
        ),
        (
            document(TWO_TOPICS.replace("hours = 4", "hours = 4\nhrs = 2")),
            "hrs: Extra inputs are not permitted",
        ),
        (
            document(TWO_TOPICS.replace('"Calculus"', '"ALGEBRA"')),
            "topic 'ALGEBRA' is listed twice",
        ),
        (
            document(TWO_TOPICS.replace('difficulty = "hard"', 'aliases = ["Algebra"]')),
            "the name 'Algebra' is used by both 'Algebra' and 'Calculus'",
        ),
    ],
)
def test_malformed_documents_are_refused_naming_the_file(body: str, message: str) -> None:
    with pytest.raises(RegistryError, match="^bad.toml: .*" + message):
        build_registry([("bad.toml", body)])


def test_extra_directories_add_exams_and_replace_subjects(tmp_path: Path) -> None:
    (tmp_path / "gre.toml").write_text(document(TWO_TOPICS, exam="gre"), encoding="utf-8")
    override = """
exam = "neet"

[subjects.physics]
name = "Physics (short)"

[[subjects.physics.topics]]
name = "Mechanics"
weight = 9
hours = 10

[subjects.zoology]
name = "Zoology"

[[subjects.zoology.topics]]
name = "Animal Kingdom"
weight = 5
hours = 5
"""
    (tmp_path / "neet-local.toml").write_text(override, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a registry file", encoding="utf-8")
    registry = load_registry([tmp_path])
    assert [e.key for e in registry.exams] == ["cat", "jee", "neet", "upsc", "gre"]
    assert [t.name for t in registry.topics("gre", "maths")] == ["Algebra", "Calculus"]
    neet = registry.exam("neet")
    assert neet.name == "NEET (UG)"  # kept: the override gives no name
    assert [s.key for s in neet.subjects] == ["biology", "physics", "chemistry", "zoology"]
    assert [t.name for t in registry.topics("neet", "physics")] == ["Mechanics"]
    assert len(registry.topics("neet", "biology")) == 10


def test_only_extra_directories_when_asked(tmp_path: Path) -> None:
    (tmp_path / "gre.toml").write_text(document(TWO_TOPICS, exam="gre"), encoding="utf-8")
    registry = load_registry([str(tmp_path)], include_builtin=False)
    assert [e.key for e in registry.exams] == ["gre"]


def test_a_missing_directory_or_a_non_utf8_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        load_registry([tmp_path / "nowhere"])
    (tmp_path / "latin1.toml").write_bytes(b'exam = "caf\xe9"\n')
    with pytest.raises(RegistryError, match=r"latin1\.toml: not UTF-8 text"):
        load_registry([tmp_path])
