"""Raises (a function error) when any record's data contains ``poison``; else returns None.

Every event it receives, failing or not, is kept in :data:`EVENTS`.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.functions.records import iter_records, record_data

MARKER = b"poison"
EVENTS: list[Any] = []
_lock = threading.Lock()


class PoisonRecordError(Exception):
    pass


def handler(event: Any, context: Any) -> None:
    with _lock:
        EVENTS.append(event)
    records = list(iter_records(event))
    for record in records:
        if MARKER in record_data(record):
            raise PoisonRecordError(f"poison record in a batch of {len(records)}")


def reset() -> None:
    with _lock:
        EVENTS.clear()
