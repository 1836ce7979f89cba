"""A worker process for crash tests: the kit's real worker (consumer, inbox, outbox, relay)
with one command, ``test.ask`` v1, whose handler waits on the model, so a test can kill the
process while a command is received but not yet committed.

Run as ``python -m tests.fakes.llm_worker``; configured by the usual environment (its
service name, ``EXAMMENTOR_SERVICE_NAME``, picks the topic it consumes).
"""

from __future__ import annotations

from pydantic import BaseModel

from exammentor.contracts.commands import Command
from exammentor.contracts.events import SystemEchoedV1
from exammentor.messaging.consumer import CommandContext, CommandRouter, Outcome
from exammentor.settings import WorkerSettings
from exammentor.worker import WorkerResources, run_worker


class AskPayload(BaseModel):
    """``test.ask`` v1: one question for the model."""

    question: str


class AskResult(BaseModel):
    """The model's answer."""

    answer: str


def ask_command(router: CommandRouter) -> Command[AskPayload, AskResult]:
    """``test.ask`` v1, declared for whichever service the test runs this worker as."""
    return Command("test.ask", 1, router.service, AskPayload, AskResult)


def install_handlers(router: CommandRouter, resources: WorkerResources[WorkerSettings]) -> None:
    """The crash-test worker's command."""

    @router.handle(ask_command(router))
    async def ask(ctx: CommandContext, payload: AskPayload) -> Outcome[AskResult]:
        answer = await resources.llm.text(
            messages=[{"role": "user", "content": payload.question}], purpose="test.ask"
        )
        return Outcome(
            result=AskResult(answer=answer),
            events=[ctx.event(SystemEchoedV1(text=answer, service=ctx.service))],
        )


if __name__ == "__main__":
    run_worker(WorkerSettings(), install_handlers)  # the name comes from the environment
