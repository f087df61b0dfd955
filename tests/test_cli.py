"""The command line as a user runs it: ``produce`` and ``up``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from memstream.embedded import free_port
from memstream.streams.topics import create_topics
from tests.support.pipeline import pipeline_env, read_topic, settings_from
from tests.support.servers import Tansu

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo.jsonl"


async def test_produce_sends_valid_lines_and_reports_invalid_ones(
    tmp_path: Path, tansu: Tansu
) -> None:
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    settings = settings_from(env)
    await create_topics(settings.kafka)
    lines = DEMO.read_text(encoding="utf-8").splitlines()[:5]
    bad = [
        '{"message_id": "x"}',
        "not json",
        json.dumps({**json.loads(lines[0]), "sent_at": "soon"}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([*lines[:3], bad[0], "", *lines[3:], bad[1], bad[2]]) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "memstream", "produce", str(src)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["lines"] == 8 and summary["sent"] == 5 and summary["invalid"] == 3
    assert "line 4:" in proc.stderr and "line 8:" in proc.stderr and "line 9:" in proc.stderr
    sent = await read_topic(tansu.bootstrap, settings.kafka.messages_topic, expect=5, timeout=20)
    assert sorted(sent) == sorted(line.encode() for line in lines)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_up_serves_the_demo_and_drains_on_ctrl_c(tmp_path: Path) -> None:
    """`memstream up --load demo` answers within 60 s; Ctrl-C consolidates the open window."""
    api = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSTREAM_")}
    env["MEMSTREAM_WORKER__WEB_PORT"] = str(free_port())
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memstream",
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--api-port",
            str(api),
            "--broker-port",
            str(free_port()),
            "--load",
            str(DEMO),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell's background job (``make test &``) inherits SIGINT ignored, and so would
        # this child: Ctrl-C must reach it however the tests were started.
        preexec_fn=_default_sigint,
    )
    try:
        found: list[dict[str, object]] = []
        while time.monotonic() - started < 60 and not found:
            time.sleep(1)
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{api}/v1/retrieve",
                    json={"owner_id": "demo", "user_id": "alice", "query": "Where do I work?"},
                    timeout=5,
                )
            except httpx.HTTPError:
                continue
            found = r.json()["memories"]
        assert found, "no memories within 60 s of start"
        assert any("Alibaba" in str(m["content"]) for m in found)
        first_answer_s = time.monotonic() - started
        before = httpx.get(f"http://127.0.0.1:{api}/v1/users/demo/alice/memories").json()["total"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "worker stopped" in out and "uncleanly" not in out
    # The last session was still an open window; Ctrl-C consolidated it before stopping.
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "memstream.db") as db:
        contents = [row[0] for row in db.execute("SELECT doc FROM memories")]
    # Early memories made the open window's messages searchable already (version 1); the
    # drain closed it, completing each with its exchange (version 2).
    assert len(contents) >= before, (before, len(contents))
    assert all('"version":2' in c for c in contents), [c[:80] for c in contents]
    assert any("Meituan" in c for c in contents) and any("麻婆豆腐" in c for c in contents)
    assert not any('"content":"thanks, bye"' in c or '"content":"ok"' in c for c in contents)
    print(f"first answer after {first_answer_s:.1f}s")


async def test_producer_example_in_docs_runs(tmp_path: Path, tansu: Tansu) -> None:
    """The Python example in docs/producers.md, run as written, lands on the topic."""
    text = (ROOT / "docs" / "producers.md").read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    settings = settings_from(env)
    await create_topics(settings.kafka)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    sent = await read_topic(tansu.bootstrap, settings.kafka.messages_topic, expect=1, timeout=20)
    assert len(sent) == 1 and json.loads(sent[0])["user_id"] == "u-42"


async def test_produce_reads_standard_input(tmp_path: Path, tansu: Tansu) -> None:
    """What docs/producers.md offers instead of kcat for the embedded broker."""
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    settings = settings_from(env)
    await create_topics(settings.kafka)
    line = DEMO.read_text(encoding="utf-8").splitlines()[2]
    proc = subprocess.run(
        [sys.executable, "-m", "memstream", "produce", "-"],
        input=line + "\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["sent"] == 1
    sent = await read_topic(tansu.bootstrap, settings.kafka.messages_topic, expect=1, timeout=20)
    assert sent == [line.encode()]
