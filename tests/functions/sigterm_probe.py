"""A handler for the SIGTERM drain test: logs the start and end of each batch to the file in
PROBE_LOG, and takes PROBE_SLEEP seconds while the file PROBE_SLOW exists."""

from __future__ import annotations

import base64
import os
import time
from typing import Any


def _log(line: str) -> None:
    with open(os.environ["PROBE_LOG"], "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()


def handler(event: dict[str, Any], context: Any) -> None:
    data = ",".join(base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"])
    _log(f"start {data}")
    if os.path.exists(os.environ.get("PROBE_SLOW", "/nonexistent")):
        time.sleep(float(os.environ.get("PROBE_SLEEP", "2")))
    _log(f"end {data}")
