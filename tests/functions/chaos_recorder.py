"""The chaos test's handler: appends one line per delivered Kinesis record to a file of its own
process (``$CHAOS_DIR/deliveries-<pid>.txt``): partition key, sequence number, pid, time in ns.
Flushed before returning, so a record counts as delivered once its invocation returned."""

from __future__ import annotations

import os
import time
from typing import Any, TextIO

_files: dict[int, TextIO] = {}


def _file() -> TextIO:
    pid = os.getpid()
    f = _files.get(pid)
    if f is None:
        path = os.path.join(os.environ["CHAOS_DIR"], f"deliveries-{pid}.txt")
        f = _files[pid] = open(path, "a", encoding="ascii")
    return f


def handler(event: dict[str, Any], context: Any) -> None:
    now = time.time_ns()
    pid = os.getpid()
    lines = [f"{r['kinesis']['partitionKey']} {r['kinesis']['sequenceNumber']} {pid} {now}\n"
             for r in event["Records"]]
    f = _file()
    f.write("".join(lines))
    f.flush()
