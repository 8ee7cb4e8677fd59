"""Takes its time: sleeps ``FN_SLOW_SECONDS`` (default :data:`DELAY`) seconds, then returns
``{"slept": seconds}``. ``handler`` blocks (a sync function in a worker thread), ``async_handler``
awaits."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

DELAY = 1.0


def _seconds() -> float:
    return float(os.environ.get("FN_SLOW_SECONDS", DELAY))


def handler(event: Any, context: Any) -> dict[str, float]:
    seconds = _seconds()
    time.sleep(seconds)
    return {"slept": seconds}


async def async_handler(event: Any, context: Any) -> dict[str, float]:
    seconds = _seconds()
    await asyncio.sleep(seconds)
    return {"slept": seconds}
