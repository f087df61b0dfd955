"""Response cache keyed by a hash of (model, messages, parameters): replays are deterministic
and free. SQLite, so it survives restarts and a rebuild can reuse the live worker's answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from memstream.llm.base import Completion


def cache_key(material: dict[str, Any]) -> str:
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


log = logging.getLogger(__name__)


class ResponseCache:
    """Only answers that parsed and validated are stored, so a bad answer is never replayed.

    Each answer records whose messages it was about (``subject``: ``owner_id/user_id``), so
    forgetting a user removes their answers too; deleted rows are zeroed on disk
    (``secure_delete``) and the WAL is truncated after, so nothing of them is recoverable."""

    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT,"
                " text TEXT NOT NULL, prompt_tokens INT, completion_tokens INT, subject TEXT)"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            if "subject" not in columns:
                # Answers cached before subjects were recorded cannot be erased per user:
                # a cache may always be emptied, so they go (replays ask the model again).
                self._db.execute("DELETE FROM responses")
                self._db.execute("ALTER TABLE responses ADD COLUMN subject TEXT")
                log.info("LLM response cache emptied: it predates per-user erasure")
            self._db.execute("CREATE INDEX IF NOT EXISTS responses_subject ON responses (subject)")

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, model, prompt_tokens, completion_tokens FROM responses WHERE key=?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Completion(
            text=row[0], model=row[1], prompt_tokens=row[2], completion_tokens=row[3], cached=True
        )

    def put(self, key: str, completion: Completion, subject: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    completion.model,
                    completion.text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    subject,
                ),
            )

    def forget(self, subject: str) -> int:
        """Remove every answer about ``subject``; returns how many."""
        with self._lock:
            removed = self._db.execute("DELETE FROM responses WHERE subject=?", (subject,))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(removed.rowcount)

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM responses").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
