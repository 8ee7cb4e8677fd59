"""The demo's function: an ordinary Lambda handler for Kinesis events.

It decodes each order, keeps totals (read back by the demo in the same process) and fails on
an order marked ``poison`` so the demo can show bisect and the on-failure destination."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

_lock = threading.Lock()
stats: dict[str, Any] = {"invocations": 0, "records": 0, "amount": 0.0, "first_event": None,
                         "batch_sizes": []}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event["Records"]
    orders = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in records]
    if any(o.get("poison") for o in orders):
        raise ValueError("cannot process a poison order")
    with _lock:
        stats["invocations"] += 1
        stats["records"] += len(records)
        stats["amount"] += sum(float(o.get("amount", 0)) for o in orders)
        stats["batch_sizes"].append(len(records))
        if stats["first_event"] is None:
            stats["first_event"] = event
    return {"batchItemFailures": []}
