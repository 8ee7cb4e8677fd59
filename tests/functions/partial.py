"""ReportBatchItemFailures: reports every record whose data contains ``fail``.

Returns ``{"batchItemFailures": [{"itemIdentifier": <sequence number / message id>}, ...]}``
(an empty list when nothing failed). Received events are kept in :data:`EVENTS`.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.functions.records import item_identifier, iter_records, record_data

MARKER = b"fail"
EVENTS: list[Any] = []
_lock = threading.Lock()


def handler(event: Any, context: Any) -> dict[str, Any]:
    with _lock:
        EVENTS.append(event)
    failures = [{"itemIdentifier": item_identifier(record)}
                for record in iter_records(event) if MARKER in record_data(record)]
    return {"batchItemFailures": failures}


def reset() -> None:
    with _lock:
        EVENTS.clear()
