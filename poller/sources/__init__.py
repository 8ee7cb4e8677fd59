"""Source readers. A reader reads records in order and hands them to a ShardSink; it never
knows about invocations."""

from __future__ import annotations

from typing import Protocol

from poller.records import Record


class ShardSink(Protocol):
    """Where a shard reader delivers records (implemented by processing.pipeline)."""

    def put(self, records: list[Record]) -> None:
        """Records in shard order; ones already ``done`` (filtered out) are never invoked but
        hold their place so the checkpoint passes them."""
        ...

    def polled(self, millis_behind: int | None) -> None:
        """After every successful read (MillisBehindLatest: 0 = the reader is at the tip)."""
        ...

    async def wait_capacity(self, limit: int) -> None: ...

    async def finish(self) -> bool: ...

    async def stop(self) -> None: ...

    def cancel(self) -> None: ...

    def position(self) -> str | None:
        """The shard's current checkpoint (what a restarted reader resumes after)."""
        ...
