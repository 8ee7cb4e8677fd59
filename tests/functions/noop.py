"""Does nothing and returns None (for measuring invoke overhead)."""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> None:
    return None


async def async_handler(event: Any, context: Any) -> None:
    return None
