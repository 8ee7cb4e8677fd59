"""Interpreting a function's partial batch response (ReportBatchItemFailures), spec §2.4."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Final

from poller.records import Record

SUCCESS: Final = -1
INVALID: Final = -2


def first_failure(payload: bytes, records: Sequence[Record], start: int, end: int,
                  item_key: Callable[[object], str | None] | None = None) -> int:
    """Index (in ``records``) of the lowest reported failure within ``start:end``, ``SUCCESS``
    when the whole batch succeeded, or ``INVALID`` when the response is malformed and the whole
    batch counts as failed. ``item_key`` turns an ``itemIdentifier`` into a record's ``seq``
    (None when it names no record of this batch); by default it must be that ``seq`` string."""
    text = payload.strip()
    if not text:
        return SUCCESS
    try:
        doc = json.loads(text)
    except ValueError:
        return INVALID
    if not isinstance(doc, dict):
        return SUCCESS  # null, "", [], or a plain value: no batchItemFailures were reported
    failures = doc.get("batchItemFailures")
    if failures is None:
        return SUCCESS
    if not isinstance(failures, list):
        return INVALID
    if not failures:
        return SUCCESS
    index: dict[str, int] | None = None
    lowest = end
    for entry in failures:
        if not isinstance(entry, dict):
            return INVALID
        ident = entry.get("itemIdentifier")
        if item_key is not None:
            ident = item_key(ident)
        if not isinstance(ident, str) or not ident:
            return INVALID
        if index is None:
            index = {records[i].seq: i for i in range(start, end)}
        i = index.get(ident)
        if i is None:
            return INVALID
        if i < lowest:
            lowest = i
    return lowest
