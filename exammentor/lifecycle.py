"""A process's lifecycle: what start-up opens, shutdown closes, in reverse order.

The gateway and every worker start the same way: each resource is opened and its stop is
put on one exit stack (:class:`contextlib.AsyncExitStack`); shutdown closes the stack. The
rules the code keeps:

- **A stop is registered before its start is awaited** (:meth:`Lifecycle.enter`), so a
  start that fails half-way is still undone. Every stop in the kit is safe on something
  that never started.
- **Shutdown is start-up reversed.** The order of registration is the contract: a process
  registers what must outlive the drain (pools, the model client, the ops server answering
  ``/ready`` with ``draining``) before what it drains (the consumer), and the draining flag
  last, so that flag is the first thing shutdown does.
- **Every step runs, also when one fails**: the failure is logged with the step's name, the
  steps after it still run, and the failure is raised once all of them ran (an
  :class:`~contextlib.AsyncExitStack` chains several).
- **Closing twice is harmless**: a closed lifecycle has nothing left to close, and can be
  entered again (a test starts a stopped worker again).

:func:`run_until_signalled` is the one ``main`` loop of a process: start, wait for SIGTERM
or SIGINT, stop (also after a start that failed). :func:`serve` runs it on uvloop's event
loop: every hop of a command (a socket read, a task switch) costs less than on asyncio's,
and under hundreds of commands in flight those hops, queued, are the latency each await adds.
``EXAMMENTOR_EVENT_LOOP=asyncio`` runs the standard loop instead (to debug with its tools).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Protocol

import uvloop

from exammentor.logs import get_logger

log = get_logger(__name__)

Stop = Callable[[], object]
"""A step of shutdown: a function or a coroutine function taking no argument."""


class Lifecycle:
    """The resources of one process, closed in reverse order of their start."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stack = AsyncExitStack()

    async def enter(self, start: Callable[[], Awaitable[object]], stop: Stop) -> None:
        """Registers ``stop``, then awaits ``start``: a start that fails half-way is undone
        by :meth:`close` all the same."""
        self.on_stop(stop)
        await start()

    def on_stop(self, stop: Stop) -> None:
        """Registers a step of shutdown; it runs before every step registered earlier."""
        step = getattr(stop, "__qualname__", repr(stop))

        async def run() -> None:
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a cancellation is not a failure: it passes unlogged
                log.exception("a shutdown step failed; the steps after it still run", step=step)
                raise

        self._stack.push_async_callback(run)

    async def close(self) -> None:
        """Runs every registered step, last registered first; raises a step's failure once
        every step ran."""
        await self._stack.aclose()


class Process(Protocol):
    """What :func:`run_until_signalled` runs: the gateway or a worker."""

    async def start(self) -> None:
        """Opens everything; raises when a server does not come."""

    async def stop(self) -> None:
        """Closes what :meth:`start` opened; safe after a failed or partial start."""


async def run_until_signalled(process: Process) -> None:
    """Starts ``process``, serves until SIGTERM or SIGINT, then stops it (drains).

    Args:
        process: A gateway or a worker; stopped also when its start failed.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await process.start()
        await stop.wait()
        log.info("shutdown requested")
    finally:
        await process.stop()


def serve(process: Process) -> None:
    """A process's ``main``: :func:`run_until_signalled` on uvloop (the standard event loop
    when ``EXAMMENTOR_EVENT_LOOP=asyncio``)."""
    if os.environ.get("EXAMMENTOR_EVENT_LOOP", "uvloop") == "asyncio":
        asyncio.run(run_until_signalled(process))
    else:
        uvloop.run(run_until_signalled(process))
