"""Who owns which shard, and where checkpoints live (sqlite for one replica)."""

from __future__ import annotations

from typing import Protocol

SHARD_END = "SHARD_END"
TRIM_HORIZON = "TRIM_HORIZON"
AT_TIMESTAMP_PREFIX = "AT_TIMESTAMP:"


class CheckpointStore(Protocol):
    async def open(self) -> None: ...

    async def load(self, mapping: str) -> dict[str, str]: ...

    async def save(self, items: list[tuple[str, str, str]],
                   windows: list[tuple[str, str, str | None]] | None = None) -> None:
        """Durably write (mapping, shard, checkpoint) rows, and (mapping, shard, open tumbling
        window as JSON, None once closed) rows, in one transaction."""
        ...

    async def load_windows(self, mapping: str) -> dict[str, str]:
        """Open tumbling windows by shard, as saved."""
        ...

    async def close(self) -> None: ...
