"""Who owns which shard, and where checkpoints live (sqlite for one replica)."""

from __future__ import annotations

from typing import Protocol

SHARD_END = "SHARD_END"
TRIM_HORIZON = "TRIM_HORIZON"
AT_TIMESTAMP_PREFIX = "AT_TIMESTAMP:"


class CheckpointStore(Protocol):
    async def load(self, mapping: str) -> dict[str, str]: ...

    async def save(self, items: list[tuple[str, str, str]]) -> None:
        """Durably write (mapping, shard, checkpoint) rows in one transaction."""
        ...

    async def close(self) -> None: ...
