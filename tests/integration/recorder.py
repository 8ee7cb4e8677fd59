"""The recording Lambda handler the integration harnesses share: each source's recorder says how
an event splits into the items it keeps and how it responds; this base keeps every event, counts
invocations in flight, waits ``delay`` and keeps the items of invocations that returned. And the
function host that serves a recorder over the Lambda Invoke API."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from poller.functionhost import FunctionHost

Kept = TypeVar("Kept")  # what ``events`` holds of one invocation
Item = TypeVar("Item")  # what one record of an event becomes


@dataclass(kw_only=True)
class BatchRecorder(Generic[Kept, Item]):
    """A Lambda handler recording what it receives (the function host runs ``handler``)."""

    delay: float = 0.0
    events: list[Kept] = field(default_factory=list)
    ok: list[Item] = field(default_factory=list)  # items of invocations that returned
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def split(self, event: dict[str, Any], n: int) -> tuple[Kept, list[Item]]:
        """What ``events`` keeps of the ``n``-th event, and its items (called under ``lock``)."""
        raise NotImplementedError

    def started(self, items: list[Item]) -> None:
        """Called under ``lock`` as an invocation starts."""

    def finished(self, items: list[Item]) -> None:
        """Called under ``lock`` as an invocation ends, whether it returned or raised."""

    def respond(self, event: dict[str, Any], items: list[Item]) -> Any:
        """The invocation's result; raising makes it a function error."""
        return None

    def handler(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            kept, items = self.split(event, len(self.events))
            self.events.append(kept)
            self.started(items)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            result = self.respond(event, items)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.finished(items)
        with self.lock:
            self.ok.extend(items)
        return result


@dataclass
class SeenRecorder(BatchRecorder[dict[str, Any], Item]):
    """Keeps whole events and every item received in ``seen``; ``behave(event, items)`` may
    raise or return a response."""

    behave: Callable[[dict[str, Any], list[Item]], Any] | None = None
    seen: list[Item] = field(default_factory=list)

    def started(self, items: list[Item]) -> None:
        self.seen.extend(items)

    def respond(self, event: dict[str, Any], items: list[Item]) -> Any:
        return self.behave(event, items) if self.behave else None


class Recording(Protocol):
    """A recorder whose ``handler`` the function host runs."""

    def handler(self, event: dict[str, Any], context: Any) -> Any: ...


@contextlib.asynccontextmanager
async def function_host(recorder: Recording,
                        concurrency: int = 1000) -> AsyncIterator[FunctionHost]:
    host = FunctionHost(recorder.handler, concurrency=concurrency)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
