"""A newcomer's mistakes get one line with the fix and a non-zero exit, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from memstream import __version__
from memstream.embedded import free_port


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEMSTREAM_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "memstream", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_and_short_help() -> None:
    assert run("--version").stdout.strip() == f"memstream, version {__version__}"
    assert "Usage: memstream" in run("-h").stdout
    assert "--bootstrap-servers" in run("produce", "-h").stdout


def test_a_broker_that_is_not_there_is_one_line() -> None:
    port = free_port()  # nothing listens there
    done = run("topics", "create", "--bootstrap-servers", f"127.0.0.1:{port}")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"Error: cannot reach the Kafka broker at 127.0.0.1:{port}"
    )
    assert "memstream up" in lines[0] and "Traceback" not in done.stderr


def test_a_bad_setting_names_its_variable_and_a_typo_is_not_ignored() -> None:
    bad = run("topics", "create", MEMSTREAM_API__PORT="99999")
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "Error: invalid settings: MEMSTREAM_API__PORT: "
        "Input should be less than or equal to 65535 (got '99999')"
    )
    port = free_port()
    typo = run(
        "topics",
        "create",
        "--bootstrap-servers",
        f"127.0.0.1:{port}",
        MEMSTREAM_WINDOW__IDLE_SECOND="3",
        MEMSTREAM_LLM__BACKEND="openai",
        MEMSTREAM_LLM__MODEL="gpt-4o-mini",
    )
    warnings = [line for line in typo.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: MEMSTREAM_WINDOW__IDLE_SECOND is not a setting and is ignored; "
        "did you mean MEMSTREAM_WINDOW__IDLE_SECONDS?",
        "warning: llm.backend=openai has no API key: set MEMSTREAM_LLM__API_KEY or "
        "OPENAI_API_KEY (every model call will fail)",
    ]
