"""The event contracts: every model registered, the AsyncAPI document current."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from exammentor.asyncapi import asyncapi_document
from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import EVENTS, DomainEvent, SystemEchoedV1

ROOT = Path(__file__).resolve().parents[2]


def _subclasses(cls: type[DomainEvent]) -> set[type[DomainEvent]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_event_model_is_registered_once() -> None:
    assert set(EVENTS.values()) == _subclasses(DomainEvent)
    assert len({(m.TYPE, m.VERSION) for m in EVENTS.values()}) == len(EVENTS)


def test_the_committed_asyncapi_document_matches_the_models() -> None:
    committed = json.loads((ROOT / "docs/asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(asyncapi_document())), (
        "run: python scripts/gen_asyncapi.py"
    )


def test_document_lists_each_event_on_its_domain_topic() -> None:
    doc = asyncapi_document("acme")
    assert doc["channels"]["plan"]["address"] == "acme.evt.plan"
    assert set(doc["channels"]["plan"]["messages"]) == {"plan_generated_v1", "plan_verified_v1"}
    payload = doc["components"]["messages"]["plan_verified_v1"]["payload"]
    assert payload["properties"]["type"]["const"] == "plan.verified"
    assert "coverage_percent" in payload["properties"]["payload"]["properties"]


def test_an_envelope_payload_validates_against_its_model() -> None:
    event = EventEnvelope(
        type="system.echoed",
        version=1,
        user_id=uuid.uuid4(),
        payload=SystemEchoedV1(text="hi", service="quiz").model_dump(mode="json"),
    )
    model = EVENTS[(event.type, event.version)]
    assert model.model_validate(event.payload) == SystemEchoedV1(text="hi", service="quiz")
