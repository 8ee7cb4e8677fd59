"""Fetched Kafka records as event records, below aiokafka's per-record ``ConsumerRecord``.

aiokafka turns every fetched record into a ``ConsumerRecord`` before ``getmany`` returns it;
the poller only needs each record's event JSON. A consumer created with
``key_deserializer=RawEncoding()`` gets, per partition, lists of ready ``Record`` objects (one
list per record batch) rendered by :func:`poller.kafka_records.encode_records` straight from the
decoded batch. Everything else stays aiokafka's: CRC checks, aborted transactions skipped under
read_committed, control batches skipped, records before the fetch position (compressed message
sets) skipped, position, seek, pause and rebalance handling.

The hook is a subclass of aiokafka's ``PartitionRecords`` installed in its fetcher module; it
behaves exactly like aiokafka's class for every consumer without a ``RawEncoding``. When
aiokafka's internals differ from what it expects, nothing is installed and ``getmany`` returns
``ConsumerRecord`` objects as usual (``installed`` is False; callers handle both).
"""

from __future__ import annotations

from collections.abc import Iterator
from json.encoder import encode_basestring_ascii as json_str
from typing import Any

from aiokafka.consumer import fetcher as _fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.structs import TopicPartition

from poller.kafka_records import encode_records
from poller.records import Record

_READ_COMMITTED = getattr(_fetcher, "READ_COMMITTED", None)


class RawEncoding:
    """Marks a consumer whose fetched records come back as event records; holds each
    partition's fragment head. As a key deserializer it is the identity."""

    def __init__(self) -> None:
        self._heads: dict[TopicPartition, bytes] = {}

    def __call__(self, key: bytes | None) -> bytes | None:
        return key

    def head(self, tp: TopicPartition) -> bytes:
        head = self._heads.get(tp)
        if head is None:
            head = self._heads[tp] = (
                '{"topic":' + json_str(tp.topic) + ',"partition":' + str(int(tp.partition))
            ).encode("ascii")
        return head


_Base: Any = _fetcher.PartitionRecords


class RawPartitionRecords(_Base):  # type: ignore[misc]
    """aiokafka's PartitionRecords; with a RawEncoding, one list of Records per record batch."""

    def _unpack_records(self) -> Iterator[Any]:
        encoding = self._key_deserializer
        if not isinstance(encoding, RawEncoding):
            yield from super()._unpack_records()
            return
        tp = self._tp
        head = encoding.head(tp)
        records = self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {tp}")
            if self._isolation_level == _READ_COMMITTED and batch.producer_id is not None:
                self._consume_aborted_up_to(batch.base_offset)
                if batch.is_control_batch and self._contains_abort_marker(batch):
                    self._aborted_producers.discard(batch.producer_id)
                if batch.is_transactional and batch.producer_id in self._aborted_producers:
                    self.next_fetch_offset = batch.next_offset
                    continue
            if batch.is_control_batch:
                self.next_fetch_offset = batch.next_offset
                continue
            out: list[Record] = encode_records(head, batch, self.next_fetch_offset)
            self.next_fetch_offset = batch.next_offset
            if out:
                yield out


def _compatible() -> bool:
    needed = ("_unpack_records", "_consume_aborted_up_to", "_contains_abort_marker",
              "_consumer_record")
    return (_READ_COMMITTED is not None and isinstance(_Base, type)
            and all(hasattr(_Base, name) for name in needed))


def install() -> bool:
    """Install the hook once (idempotent); False when aiokafka's internals are not as expected."""
    if _fetcher.PartitionRecords is RawPartitionRecords:
        return True
    if not _compatible():
        return False
    _fetcher.PartitionRecords = RawPartitionRecords
    return True


installed = install()
