"""Kafka event records straight from aiokafka's record batches: the pure-Python twin of
``poller._fastkafka`` and the switch between them (``POLLER_NO_EXTENSIONS=1`` forces the twin).

``encode_records(head, records, min_offset)`` renders aiokafka's decoded batch records
(``DefaultRecord``/``LegacyRecord``) at ``min_offset`` or later as Lambda Kafka event records
behind ``head`` (``{"topic":"t","partition":N``), byte-identical to ``KafkaEncoder``'s output for
the same records, without building aiokafka's per-record ``ConsumerRecord`` first."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from poller.batching import PyKafkaEncoder
from poller.records import Record


def py_encode_records(head: bytes, records: Iterable[Any], min_offset: int) -> list[Record]:
    encoder = PyKafkaEncoder.__new__(PyKafkaEncoder)
    encoder._head = head.decode("ascii")
    return encoder.encode([r for r in records if r.offset >= min_offset])  # type: ignore[return-value]


def _load() -> tuple[Callable[[bytes, Iterable[Any], int], list[Record]], str]:
    if os.environ.get("POLLER_NO_EXTENSIONS") != "1":
        try:
            from poller._fastkafka import encode_records as fast
        except ImportError:  # poller.batching already warned that extensions are missing
            pass
        else:
            return fast, "cython"
    return py_encode_records, "python"


encode_records, IMPLEMENTATION = _load()
