"""``MEMSTREAM_WORKER__WEB_PORT=0`` (documented as "pick a free one") starts the worker on a
free port and says which; Faust alone refuses port 0."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from memstream.embedded import spawn, stop
from tests.support.pipeline import pipeline_env
from tests.support.servers import Tansu


@pytest.mark.servers
def test_web_port_zero_picks_a_free_port(tansu: Tansu, tmp_path: Path) -> None:
    env = pipeline_env(bootstrap=tansu.bootstrap, data_dir=tmp_path, backend="sqlite")
    env["MEMSTREAM_WORKER__WEB_PORT"] = "0"
    log = tmp_path / "worker.log"
    proc = spawn([sys.executable, "-m", "memstream", "worker"], {**os.environ, **env}, log)
    try:
        deadline, port = time.monotonic() + 90, None
        while port is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            found = re.search(r"worker web \(stats, health\) on http://127\.0\.0\.1:(\d+)/",
                              log.read_text(errors="replace"))  # fmt: skip
            port = int(found.group(1)) if found else None
            time.sleep(0.2)
        assert port and port != 6066
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/stats/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"no /stats/ on {port}")
    finally:
        stop(proc)
