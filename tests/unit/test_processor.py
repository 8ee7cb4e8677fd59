"""Processor rules (spec §2.2 to §2.4, §5) with a scripted in-memory invoker.

Pure logic: the invoker and destination here are fakes; the same rules run end to end against
real servers in tests/integration/test_kinesis_processing.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from poller.batching import Record
from poller.config_model import Mapping, TuningConfig
from poller.destinations import DestinationError, FailureContext
from poller.invokers import InvokeResult
from poller.processing.processor import Processor, ShardContext
from tests.helpers import wait_for

FAST = TuningConfig(retry_base_seconds=0.001, retry_max_seconds=0.002,
                    throttle_base_seconds=0.001, throttle_max_seconds=0.002)
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


def _records(n: int, arrival: float = 1e12) -> list[Record]:
    return [Record(100 + i, str(100 + i), f"k{i}", arrival,
                   json.dumps({"seq": str(100 + i)}).encode()) for i in range(n)]


class ScriptedInvoker:
    def __init__(self, respond: Callable[[list[str]], InvokeResult]) -> None:
        self.respond = respond
        self.calls: list[list[str]] = []

    async def invoke(self, payload: bytes) -> InvokeResult:
        seqs = [r["seq"] for r in json.loads(payload)["Records"]]
        self.calls.append(seqs)
        return self.respond(seqs)

    async def close(self) -> None:
        pass


class ListDestination:
    def __init__(self, fail: DestinationError | None = None) -> None:
        self.sent: list[tuple[dict[str, Any], bytes, FailureContext]] = []
        self.fail = fail

    async def send(self, document: dict[str, Any], event_payload: bytes,
                   ctx: FailureContext) -> None:
        if self.fail:
            raise self.fail
        self.sent.append((document, event_payload, ctx))

    async def close(self) -> None:
        pass


def _mapping(**kw: Any) -> Mapping:
    base: dict[str, Any] = dict(uuid="m-1", event_source_arn=ARN, function_name="fn",
                                starting_position="TRIM_HORIZON",
                                on_failure_destination="arn:aws:sqs:us-east-1:1:dlq")
    base.update(kw)
    return Mapping(**base)


def _ctx(mapping: Mapping) -> ShardContext:
    return ShardContext(mapping, "shardId-000000000000", "KinesisBatchInfo",
                        lambda recs: {"batchSize": len(recs), "startSequenceNumber": recs[0].seq,
                                      "endSequenceNumber": recs[-1].seq})


OK = InvokeResult(200, b"null")
ERR = InvokeResult(200, b'{"errorMessage":"boom"}', function_error="Unhandled",
                   request_id="req-1")


async def _run(mapping: Mapping, invoker: ScriptedInvoker, records: list[Record],
               dest: ListDestination | None = None, clock: Callable[[], float] | None = None
               ) -> tuple[bool, ListDestination]:
    dest = dest if dest is not None else ListDestination()
    kwargs: dict[str, Any] = {"clock": clock} if clock else {}
    proc = Processor(mapping, invoker, dest, FAST, **kwargs)
    done = await proc.process(_ctx(mapping), records)
    return done, dest


async def test_success_invokes_once_and_marks_everything_done() -> None:
    inv = ScriptedInvoker(lambda s: OK)
    records = _records(4)
    done, dest = await _run(_mapping(), inv, records)
    assert done and len(inv.calls) == 1 and all(r.done for r in records) and not dest.sent


async def test_retries_are_one_plus_maximum_retry_attempts() -> None:
    inv = ScriptedInvoker(lambda s: ERR)
    records = _records(3)
    done, dest = await _run(_mapping(maximum_retry_attempts=2), inv, records)
    assert done and len(inv.calls) == 3
    (doc, _payload, _fctx), = dest.sent
    assert doc["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    assert doc["requestContext"]["requestId"] == "req-1"
    assert doc["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                      "functionError": "Unhandled"}
    assert list(doc) == ["requestContext", "responseContext", "version", "timestamp",
                         "KinesisBatchInfo"]
    assert doc["KinesisBatchInfo"]["batchSize"] == 3
    assert all(r.done for r in records)


async def test_bisect_isolates_the_poison_record() -> None:
    inv = ScriptedInvoker(lambda s: ERR if "105" in s else OK)
    records = _records(8)
    done, dest = await _run(_mapping(bisect_batch_on_function_error=True,
                                     maximum_retry_attempts=1), inv, records)
    assert done
    (doc, payload, _c), = dest.sent
    assert doc["KinesisBatchInfo"] == {"batchSize": 1, "startSequenceNumber": "105",
                                       "endSequenceNumber": "105"}
    assert doc["requestContext"]["approximateInvokeCount"] == 2
    assert json.loads(payload) == {"Records": [{"seq": "105"}]}
    # older half first, and every good record reached the function exactly once successfully
    succeeded = [s for call in inv.calls if "105" not in call for s in call]
    assert sorted(succeeded) == sorted(str(100 + i) for i in range(8) if i != 5)
    assert inv.calls[0] == [str(100 + i) for i in range(8)]


async def test_partial_failure_retries_from_the_lowest_reported_record() -> None:
    def respond(seqs: list[str]) -> InvokeResult:
        return InvokeResult(200, json.dumps(
            {"batchItemFailures": [{"itemIdentifier": "102"}]}).encode())

    inv = ScriptedInvoker(respond)
    records = _records(3)
    done, dest = await _run(_mapping(function_response_types=("ReportBatchItemFailures",),
                                     maximum_retry_attempts=3), inv, records)
    assert done
    assert inv.calls == [["100", "101", "102"], ["102"], ["102"], ["102"]]
    (doc, _p, _c), = dest.sent
    assert doc["requestContext"]["approximateInvokeCount"] == 4
    assert doc["responseContext"]["functionError"] is None
    assert doc["KinesisBatchInfo"] == {"batchSize": 1, "startSequenceNumber": "102",
                                       "endSequenceNumber": "102"}


async def test_invalid_partial_response_retries_the_whole_batch() -> None:
    inv = ScriptedInvoker(lambda s: InvokeResult(
        200, b'{"batchItemFailures":[{"itemIdentifier":""}]}'))
    done, dest = await _run(_mapping(function_response_types=("ReportBatchItemFailures",),
                                     maximum_retry_attempts=2), inv, _records(3))
    assert done and len(inv.calls) == 3 and all(len(c) == 3 for c in inv.calls)
    assert dest.sent[0][0]["KinesisBatchInfo"]["batchSize"] == 3


async def test_partial_response_is_ignored_without_report_batch_item_failures() -> None:
    inv = ScriptedInvoker(lambda s: InvokeResult(
        200, b'{"batchItemFailures":[{"itemIdentifier":"101"}]}'))
    done, dest = await _run(_mapping(), inv, _records(3))
    assert done and len(inv.calls) == 1 and not dest.sent


async def test_throttles_do_not_consume_retry_attempts() -> None:
    answers = iter([InvokeResult(429, b"{}"), InvokeResult(0, error="refused"),
                    InvokeResult(503, b"{}"), ERR])
    inv = ScriptedInvoker(lambda s: next(answers))
    done, dest = await _run(_mapping(maximum_retry_attempts=0), inv, _records(2))
    assert done and len(inv.calls) == 4
    assert dest.sent[0][0]["requestContext"]["approximateInvokeCount"] == 1


async def test_records_past_maximum_age_are_not_invoked() -> None:
    records = _records(3, arrival=1000.0)
    inv = ScriptedInvoker(lambda s: OK)
    done, dest = await _run(_mapping(maximum_record_age_in_seconds=60), inv, records,
                            clock=lambda: 1000.0 + 61)
    assert done and inv.calls == []
    (doc, _p, _c), = dest.sent
    assert doc["requestContext"]["condition"] == "RecordAgeExceeded"
    assert doc["requestContext"]["approximateInvokeCount"] == 1
    assert "responseContext" not in doc


async def test_records_expiring_while_retrying_are_given_up() -> None:
    now = [1000.0]

    def respond(seqs: list[str]) -> InvokeResult:
        now[0] += 30
        return ERR

    inv = ScriptedInvoker(respond)
    done, dest = await _run(_mapping(maximum_record_age_in_seconds=60), inv,
                            _records(2, arrival=1000.0), clock=lambda: now[0])
    assert done and len(inv.calls) == 3
    (doc, _p, _c), = dest.sent
    assert doc["requestContext"]["condition"] == "RecordAgeExceeded"
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    assert doc["responseContext"]["functionError"] == "Unhandled"


async def test_too_large_invoke_answer_splits_the_batch() -> None:
    inv = ScriptedInvoker(lambda s: InvokeResult(413, b"{}") if len(s) > 1 else OK)
    records = _records(4)
    done, dest = await _run(_mapping(), inv, records)
    assert done and all(r.done for r in records) and not dest.sent
    assert [c for c in inv.calls if len(c) == 1] == [["100"], ["101"], ["102"], ["103"]]


async def test_record_larger_than_the_payload_limit_goes_to_the_destination() -> None:
    big = Record(1, "1", "k", 1e12, b'"' + b"x" * 6_291_456 + b'"')
    small = _records(1)[0]
    inv = ScriptedInvoker(lambda s: OK)
    done, dest = await _run(_mapping(), inv, [big, small])
    assert done and big.done and small.done
    assert inv.calls == [["100"]]
    assert dest.sent[0][0]["KinesisBatchInfo"]["startSequenceNumber"] == "1"


async def test_undeliverable_failure_record_is_dropped_not_retried_forever() -> None:
    inv = ScriptedInvoker(lambda s: ERR)
    dest = ListDestination(fail=DestinationError("no such queue", retryable=False))
    records = _records(2)
    done, _ = await _run(_mapping(maximum_retry_attempts=0), inv, records, dest=dest)
    assert done and all(r.done for r in records)


async def test_stopping_abandons_retries_without_marking_records_done() -> None:
    mapping = _mapping(maximum_retry_attempts=-1)
    inv = ScriptedInvoker(lambda s: ERR)
    ctx = _ctx(mapping)
    proc = Processor(mapping, inv, None, TuningConfig(retry_base_seconds=5, retry_max_seconds=5))
    records = _records(2)
    task = asyncio.ensure_future(proc.process(ctx, records))
    await wait_for(lambda: inv.calls, 2)
    ctx.stopping.set()
    assert await asyncio.wait_for(task, 2) is False
    assert not any(r.done for r in records)


@pytest.mark.parametrize("retries", [0, 1, 5])
async def test_function_error_with_bisect_counts_attempts_per_single_record(retries: int) -> None:
    inv = ScriptedInvoker(lambda s: ERR)
    done, dest = await _run(_mapping(bisect_batch_on_function_error=True,
                                     maximum_retry_attempts=retries), inv, _records(2))
    assert done and len(dest.sent) == 2
    assert all(d["requestContext"]["approximateInvokeCount"] == retries + 1
               for d, _p, _c in dest.sent)
