"""The gateway's relay hub holds a bounded number of chunks for a client that stopped
reading, and never drops the final one."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exammentor._proto import relay_pb2
from exammentor.messaging import result_relay as relay
from exammentor.messaging.result_relay import RelayHub


class _Context:
    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, *args: Any) -> None:
        raise AssertionError(f"aborted: {args}")


async def _chunks(request_id: uuid.UUID, progress: int) -> AsyncIterator[relay_pb2.ResultChunk]:
    for seq in range(1, progress + 1):
        yield relay_pb2.ResultChunk(
            request_id=str(request_id), seq=seq, progress_json=json.dumps({"n": seq})
        )
    yield relay_pb2.ResultChunk(
        request_id=str(request_id), seq=progress + 1, result_json=json.dumps({"done": True})
    )


async def test_a_client_that_stopped_reading_holds_a_bounded_queue_that_keeps_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay, "WAITER_QUEUE_SIZE", 5)
    hub = RelayHub()
    request_id = uuid.uuid4()
    with hub.waiter(request_id) as queue:
        ack = await hub.Push(_chunks(request_id, 50), _Context())  # type: ignore[arg-type]
        assert ack.received == 51
        held = [queue.get_nowait() for _ in range(queue.qsize())]
    assert len(held) == 5
    assert held[-1].final
    assert held[-1].data == {"done": True}
    assert [c.seq for c in held[:-1]] == sorted(c.seq for c in held[:-1])
