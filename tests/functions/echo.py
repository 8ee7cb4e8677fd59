"""Records every event it receives and returns None.

In-process (function host or local invoker in the test's process) the events are in
:data:`EVENTS`; in another process set ``FN_RECORD_FILE`` and each event is appended to that
file as one JSON line (read it back with :func:`read_record_file`).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

RECORD_FILE_ENV = "FN_RECORD_FILE"
EVENTS: list[Any] = []
_lock = threading.Lock()


def handler(event: Any, context: Any) -> None:
    with _lock:
        EVENTS.append(event)
        path = os.environ.get(RECORD_FILE_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")


async def async_handler(event: Any, context: Any) -> None:
    handler(event, context)


def reset() -> None:
    with _lock:
        EVENTS.clear()


def read_record_file(path: str) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
