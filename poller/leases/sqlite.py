"""The embedded checkpoint store: one sqlite file, WAL mode, one row per mapping and shard.

``window_state`` (added to older files on open) holds an open tumbling window as JSON, written
in the same transaction as the checkpoint so a restart resumes the window where it was.

Calls run on one dedicated thread so the event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    mapping TEXT NOT NULL,
    shard TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    updated_at REAL NOT NULL,
    window_state TEXT,
    PRIMARY KEY (mapping, shard)
)
"""
_DEFAULT_CHECKPOINT = "TRIM_HORIZON"  # a row first written for its window: read from the start


class SqliteStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
        if "window_state" not in columns:
            conn.execute("ALTER TABLE checkpoints ADD COLUMN window_state TEXT")
        self._conn = conn

    async def open(self) -> None:
        await self._run(self._open)

    def _load(self, mapping: str) -> dict[str, str]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT shard, checkpoint FROM checkpoints WHERE mapping = ?", (mapping,)).fetchall()
        return {shard: cp for shard, cp in rows}

    async def load(self, mapping: str) -> dict[str, str]:
        result: dict[str, str] = await self._run(self._load, mapping)
        return result

    def _load_windows(self, mapping: str) -> dict[str, str]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT shard, window_state FROM checkpoints WHERE mapping = ? "
            "AND window_state IS NOT NULL", (mapping,)).fetchall()
        return {shard: w for shard, w in rows}

    async def load_windows(self, mapping: str) -> dict[str, str]:
        """Open tumbling windows by shard (JSON), as last saved."""
        result: dict[str, str] = await self._run(self._load_windows, mapping)
        return result

    def _save(self, items: list[tuple[str, str, str]],
              windows: list[tuple[str, str, str | None]]) -> None:
        assert self._conn is not None
        now = time.time()
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO checkpoints (mapping, shard, checkpoint, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (mapping, shard) DO UPDATE SET "
                "checkpoint = excluded.checkpoint, updated_at = excluded.updated_at",
                [(m, s, c, now) for m, s, c in items])
            self._conn.executemany(
                "INSERT INTO checkpoints (mapping, shard, checkpoint, updated_at, window_state) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (mapping, shard) DO UPDATE SET "
                "window_state = excluded.window_state, updated_at = excluded.updated_at",
                [(m, s, _DEFAULT_CHECKPOINT, now, w) for m, s, w in windows])

    async def save(self, items: list[tuple[str, str, str]],
                   windows: list[tuple[str, str, str | None]] | None = None) -> None:
        """Write (mapping, shard, checkpoint) rows and (mapping, shard, window JSON or None)
        in one transaction."""
        if items or windows:
            await self._run(self._save, items, windows or [])

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)
