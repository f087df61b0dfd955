"""Where the examples point: the query service of `make run` (demo user alice) and any
OpenAI-compatible model server (a local xllamacpp / llama.cpp / vLLM, or OpenAI)."""

from __future__ import annotations

import os

URL = os.environ.get("MEMSTREAM_URL", "http://127.0.0.1:8080")
API_KEY = os.environ.get("MEMSTREAM_API_KEY")
OWNER = os.environ.get("MEMSTREAM_OWNER", "demo")
USER = os.environ.get("MEMSTREAM_USER", "alice")
MODEL_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
MODEL_KEY = os.environ.get("OPENAI_API_KEY", "none")
MODEL = os.environ.get("MODEL", "local")
QUESTION = os.environ.get("QUESTION", "Where do I work now?")
