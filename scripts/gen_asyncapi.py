"""Writes docs/asyncapi.json from the event models (run after changing an event)."""

from __future__ import annotations

import json
from pathlib import Path

from exammentor.asyncapi import asyncapi_document

TARGET = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"

if __name__ == "__main__":
    TARGET.write_text(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {TARGET.name}")
