"""Settings: defaults, TOML file, environment precedence, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from memstream.config import Settings


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("MEMSTREAM_"):
            monkeypatch.delenv(key)
    s = Settings.load(data_dir=Path("/tmp/x"))
    assert s.store.backend == "sqlite" and s.store.sqlite_path == Path("/tmp/x/memstream.db")
    assert s.kafka.messages_topic == "memstream.messages" and s.kafka.messages_retention_ms == -1


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "memstream.toml"
    cfg.write_text('data_dir = "/srv/m"\n[window]\nmax_messages = 7\nidle_seconds = 9\n')
    monkeypatch.setenv("MEMSTREAM_WINDOW__IDLE_SECONDS", "30")
    s = Settings.load(cfg)
    assert s.data_dir == Path("/srv/m") and s.window.max_messages == 7
    assert s.window.idle_seconds == 30


def test_invalid_settings_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSTREAM_KAFKA__PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings.load()
    monkeypatch.delenv("MEMSTREAM_KAFKA__PARTITIONS")
    monkeypatch.setenv("MEMSTREAM_STORE__BACKEND", "mongodb")
    with pytest.raises(ValidationError, match="backend"):
        Settings.load()
    with pytest.raises(FileNotFoundError):
        Settings.load(tmp_path / "missing.toml")
