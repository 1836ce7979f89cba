"""Plan revisions: which planned topics a goal places."""

from __future__ import annotations

from services.planner.domain import enrich_topics, parse_syllabus, wished_topics

OUTLINE = "Arithmetic\n- Integers\n- Exponents\nGeometry\n- Triangles\n- Circles\n"


def test_a_goal_naming_a_heading_places_every_item_under_it() -> None:
    topics = enrich_topics(parse_syllabus(OUTLINE))
    assert wished_topics("Geometry first, please", topics) == [
        "Geometry: Triangles",
        "Geometry: Circles",
    ]
    assert wished_topics("Start with triangles", topics) == ["Geometry: Triangles"]
    assert wished_topics("I like geometry", topics) == []  # no order asked for
