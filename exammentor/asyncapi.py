"""The AsyncAPI 3.0 document of the event feed, built from the event models.

``scripts/gen_asyncapi.py`` writes it to ``docs/asyncapi.json``; a test fails when the
committed file and the models disagree, so the document cannot go stale.
"""

from __future__ import annotations

from typing import Any

from exammentor import __version__
from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import EVENTS, DomainEvent


def _message_name(model: type[DomainEvent]) -> str:
    return f"{model.TYPE.replace('.', '_')}_v{model.VERSION}"


def _envelope_schema(model: type[DomainEvent]) -> dict[str, Any]:
    schema = EventEnvelope.model_json_schema()
    props = schema["properties"]
    props["type"] = {"type": "string", "const": model.TYPE}
    props["version"] = {"type": "integer", "const": model.VERSION}
    payload = model.model_json_schema()
    # Nested definitions of the payload move up to the envelope's level.
    defs = payload.pop("$defs", {})
    props["payload"] = payload
    if defs:
        schema.setdefault("$defs", {}).update(defs)
    schema["title"] = f"{model.__name__} event"
    return schema


def asyncapi_document(topic_prefix: str = "exammentor") -> dict[str, Any]:
    """The whole document, for topics under ``topic_prefix``."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for (type_, _version), model in sorted(EVENTS.items()):
        domain = type_.split(".", 1)[0]
        name = _message_name(model)
        messages[name] = {
            "name": name,
            "title": f"{type_} v{model.VERSION}",
            "summary": model.SUMMARY,
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "event-type": {"type": "string", "const": type_},
                    "event-version": {"type": "string", "const": str(model.VERSION)},
                    "traceparent": {
                        "type": "string",
                        "description": "W3C trace context of the command that caused it",
                    },
                },
                "required": ["event-type", "event-version"],
            },
            "payload": _envelope_schema(model),
            "bindings": {
                "kafka": {"key": {"type": "string", "description": "the user id (per-user order)"}}
            },
        }
        channel = channels.setdefault(
            domain,
            {
                "address": f"{topic_prefix}.evt.{domain}",
                "description": f"Events of the {domain} domain, keyed by user id.",
                "messages": {},
            },
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for domain in channels:
        operations[f"receive_{domain}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{domain}"},
            "summary": f"Subscribe to {domain} events (delivered at least once: "
            "deduplicate by event_id).",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ExamMentor domain events",
            "version": __version__,
            "description": (
                "Events leave through a transactional outbox: each is published after the "
                "change it describes committed, at least once, in order per user. "
                "The envelope's type and version name the payload's schema."
            ),
        },
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "the native development broker (deploy/local/kafka.sh)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
