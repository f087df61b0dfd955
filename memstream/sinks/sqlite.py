"""SQLite store: stdlib sqlite3 in WAL mode, FTS5 for BM25, exact cosine per user in numpy.

Per-user memory sets are small (hundreds to thousands), so an exact scan of one user's
vectors is both faster and better than an approximate index. The worker writes and the
query service reads the same file from separate processes; WAL lets readers run alongside
the writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from memstream.schemas.memory import MemoryNode
from memstream.sinks.base import Hit, MemoryFilter, MemoryStore, WriteResult
from memstream.sinks.text import index_text, query_terms

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    memory_id    TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    memory_type  TEXT NOT NULL,
    store_status TEXT NOT NULL,
    message_time TEXT NOT NULL,
    version      INTEGER NOT NULL,
    doc          TEXT NOT NULL,
    vector       BLOB,
    fts_scope    TEXT NOT NULL,
    fts_text     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_user ON memories (owner_id, user_id, message_time);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    fts_scope, fts_text, content='memories', content_rowid='rowid', tokenize='unicode61'
);
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, fts_scope, fts_text)
    VALUES (new.rowid, new.fts_scope, new.fts_text);
END;
CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, fts_scope, fts_text)
    VALUES ('delete', old.rowid, old.fts_scope, old.fts_text);
END;
CREATE TRIGGER IF NOT EXISTS memories_au AFTER UPDATE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, fts_scope, fts_text)
    VALUES ('delete', old.rowid, old.fts_scope, old.fts_text);
    INSERT INTO memories_fts (rowid, fts_scope, fts_text)
    VALUES (new.rowid, new.fts_scope, new.fts_text);
END;
"""

_UPSERT = """
INSERT INTO memories (memory_id, owner_id, user_id, memory_type, store_status, message_time,
                      version, doc, vector, fts_scope, fts_text)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (memory_id) DO UPDATE SET
    memory_type = excluded.memory_type, store_status = excluded.store_status,
    message_time = excluded.message_time, version = excluded.version, doc = excluded.doc,
    vector = excluded.vector, fts_scope = excluded.fts_scope, fts_text = excluded.fts_text
WHERE excluded.version > memories.version
"""


def scope_token(owner_id: str, user_id: str) -> str:
    """One FTS token per user, so a MATCH only touches that user's postings."""
    digest = hashlib.blake2b(f"{owner_id}/{user_id}".encode(), digest_size=10).hexdigest()
    return f"s{digest}"


def _filter_sql(flt: MemoryFilter) -> tuple[str, list[str]]:
    types = [t.value for t in flt.types]
    statuses = [s.value for s in flt.statuses]
    sql = (
        f" AND m.memory_type IN ({','.join('?' * len(types))})"
        f" AND m.store_status IN ({','.join('?' * len(statuses))})"
    )
    return sql, [*types, *statuses]


def _node(doc: str, vector: bytes | None) -> MemoryNode:
    node = MemoryNode.model_validate_json(doc)
    if vector is not None:
        node.vector = np.frombuffer(vector, dtype=np.float32).tolist()
    return node


class SQLiteStore(MemoryStore):
    backend = "sqlite"

    def __init__(self, path: Path, *, read_threads: int = 4) -> None:
        self.path = path
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="sqlite")
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._conn()))

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def create(conn: sqlite3.Connection) -> None:
            with self._write_lock:
                conn.executescript(SCHEMA)
                conn.commit()

        await self._run(create)

    async def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._executor.shutdown(wait=True)

    # -- writes ------------------------------------------------------------------------------
    async def upsert(self, nodes: Sequence[MemoryNode]) -> WriteResult:
        rows = []
        for node in nodes:
            vector = (
                None if node.vector is None else np.asarray(node.vector, dtype=np.float32).tobytes()
            )
            rows.append(
                (
                    node.memory_id,
                    node.owner_id,
                    node.user_id,
                    node.memory_type.value,
                    node.store_status.value,
                    node.message_time.isoformat(),
                    node.version,
                    node.model_dump_json(exclude={"vector"}),
                    vector,
                    scope_token(node.owner_id, node.user_id),
                    index_text(node.content),
                )
            )

        def write(conn: sqlite3.Connection) -> WriteResult:
            applied: list[str] = []
            stale: list[str] = []
            with self._write_lock:
                try:
                    for row in rows:
                        cur = conn.execute(_UPSERT, row)
                        (applied if cur.rowcount else stale).append(row[0])
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            return WriteResult(applied, stale)

        return await self._run(write)

    async def delete(
        self, owner_id: str, user_id: str, memory_ids: Sequence[str] | None = None
    ) -> list[str]:
        def remove(conn: sqlite3.Connection) -> list[str]:
            with self._write_lock:
                try:
                    if memory_ids is None:
                        rows = conn.execute(
                            "SELECT memory_id FROM memories WHERE owner_id=? AND user_id=?",
                            (owner_id, user_id),
                        ).fetchall()
                    else:
                        marks = ",".join("?" * len(memory_ids))
                        rows = conn.execute(
                            "SELECT memory_id FROM memories WHERE owner_id=? AND user_id=?"
                            f" AND memory_id IN ({marks})",
                            (owner_id, user_id, *memory_ids),
                        ).fetchall()
                    found = [r[0] for r in rows]
                    conn.executemany(
                        "DELETE FROM memories WHERE memory_id=? AND owner_id=? AND user_id=?",
                        [(mid, owner_id, user_id) for mid in found],
                    )
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            return found

        if memory_ids is not None and not memory_ids:
            return []
        return await self._run(remove)

    # -- reads -------------------------------------------------------------------------------
    async def get(self, owner_id: str, user_id: str, memory_id: str) -> MemoryNode | None:
        def read(conn: sqlite3.Connection) -> MemoryNode | None:
            row = conn.execute(
                "SELECT doc, vector FROM memories WHERE memory_id=? AND owner_id=? AND user_id=?",
                (memory_id, owner_id, user_id),
            ).fetchone()
            return None if row is None else _node(row[0], row[1])

        return await self._run(read)

    async def list_memories(
        self,
        owner_id: str,
        user_id: str,
        flt: MemoryFilter = MemoryFilter(),
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> list[MemoryNode]:
        where, params = _filter_sql(flt)

        def read(conn: sqlite3.Connection) -> list[MemoryNode]:
            rows = conn.execute(
                "SELECT m.doc, m.vector FROM memories m WHERE m.owner_id=? AND m.user_id=?"
                f"{where} ORDER BY m.message_time DESC, m.memory_id LIMIT ? OFFSET ?",
                (owner_id, user_id, *params, limit, offset),
            ).fetchall()
            return [_node(doc, vec) for doc, vec in rows]

        return await self._run(read)

    async def count(
        self,
        owner_id: str | None = None,
        user_id: str | None = None,
        flt: MemoryFilter | None = None,
    ) -> int:
        clauses, params = ["1=1"], []
        if owner_id is not None:
            clauses.append("m.owner_id=?")
            params.append(owner_id)
        if user_id is not None:
            clauses.append("m.user_id=?")
            params.append(user_id)
        extra, extra_params = _filter_sql(flt) if flt is not None else ("", [])

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT count(*) FROM memories m WHERE {' AND '.join(clauses)}{extra}",
                (*params, *extra_params),
            ).fetchone()
            return int(row[0])

        return await self._run(read)

    async def search_vector(
        self,
        owner_id: str,
        user_id: str,
        vector: npt.NDArray[np.float32],
        k: int,
        flt: MemoryFilter = MemoryFilter(),
    ) -> list[Hit]:
        where, params = _filter_sql(flt)
        query = np.asarray(vector, dtype=np.float32)

        def read(conn: sqlite3.Connection) -> list[Hit]:
            rows = conn.execute(
                "SELECT m.doc, m.vector FROM memories m WHERE m.owner_id=? AND m.user_id=?"
                f" AND m.vector IS NOT NULL{where}",
                (owner_id, user_id, *params),
            ).fetchall()
            usable = [(doc, vec) for doc, vec in rows if len(vec) == query.nbytes]
            if not usable:
                return []
            matrix = np.frombuffer(b"".join(vec for _, vec in usable), dtype=np.float32)
            scores = matrix.reshape(len(usable), -1) @ query
            top = np.argsort(-scores, kind="stable")[:k]
            return [Hit(_node(*usable[i]), float(scores[i])) for i in top]

        return await self._run(read)

    async def search_text(
        self, owner_id: str, user_id: str, text: str, k: int, flt: MemoryFilter = MemoryFilter()
    ) -> list[Hit]:
        terms = query_terms(text)
        if not terms:
            return []
        where, params = _filter_sql(flt)
        match = (
            f'fts_scope:"{scope_token(owner_id, user_id)}" AND fts_text:('
            + " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
            + ")"
        )

        def read(conn: sqlite3.Connection) -> list[Hit]:
            rows = conn.execute(
                "SELECT m.doc, m.vector, bm25(memories_fts, 0.0, 1.0) AS rank"
                " FROM memories_fts JOIN memories m ON m.rowid = memories_fts.rowid"
                f" WHERE memories_fts MATCH ? AND m.owner_id=? AND m.user_id=?{where}"
                " ORDER BY rank LIMIT ?",
                (match, owner_id, user_id, *params, k),
            ).fetchall()
            # FTS5's bm25() is negative (more negative = better); flip it to the usual sign.
            return [Hit(_node(doc, vec), -float(rank)) for doc, vec, rank in rows]

        return await self._run(read)
