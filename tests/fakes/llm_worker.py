"""A worker process for crash tests: the kit's real worker (consumer, inbox, outbox, relay)
with one command, ``test.ask`` v1, whose handler waits on the model, so a test can kill the
process while a command is received but not yet committed.

Run as ``python -m tests.fakes.llm_worker``; configured by the usual environment.
"""

from __future__ import annotations

from pydantic import BaseModel

from exammentor.commands import CommandContext, CommandRouter, Outcome
from exammentor.contracts.events import SystemEchoedV1
from exammentor.settings import ServiceSettings
from exammentor.worker import WorkerResources, run_worker


class AskPayload(BaseModel):
    """``test.ask`` v1: one question for the model."""

    question: str


def build_router(resources: WorkerResources) -> CommandRouter:
    """The crash-test worker's commands."""
    router = CommandRouter(resources.settings.service_name)

    @router.command("test.ask", 1, AskPayload)
    async def ask(ctx: CommandContext, payload: AskPayload) -> Outcome:
        answer = await resources.llm.text(
            messages=[{"role": "user", "content": payload.question}], purpose="test.ask"
        )
        return Outcome(
            result={"answer": answer},
            events=[ctx.event(SystemEchoedV1(text=answer, service=ctx.service))],
        )

    return router


if __name__ == "__main__":
    run_worker(ServiceSettings(), build_router)
