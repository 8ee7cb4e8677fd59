"""Every partial batch response case of spec §2.4."""

from __future__ import annotations

import json

import pytest

from poller.batching import Record
from poller.processing.responses import INVALID, SUCCESS, first_failure


def _records(n: int) -> list[Record]:
    return [Record(1000 + i, str(1000 + i), "k", 0.0, b"{}") for i in range(n)]


RECORDS = _records(5)


@pytest.mark.parametrize("body", [b"", b"null", b'""', b"{}", b"[]",
                                  b'{"batchItemFailures": []}',
                                  b'{"batchItemFailures": null}', b'"ok"', b"42",
                                  b'{"other": 1}'])
def test_whole_batch_success(body: bytes) -> None:
    assert first_failure(body, RECORDS, 0, 5) == SUCCESS


@pytest.mark.parametrize("entries", [
    [{"itemIdentifier": ""}],
    [{"itemIdentifier": None}],
    [{"foo": 123}],
    [{"foo": None}],
    [{"itemIdentifier": "123"}],  # not a sequence number of this batch
    [{"itemIdentifier": 1002}],  # not a string
    ["1002"],
    [{"itemIdentifier": "1003"}, {"itemIdentifier": ""}],
])
def test_whole_batch_failure(entries: list[object]) -> None:
    body = json.dumps({"batchItemFailures": entries}).encode()
    assert first_failure(body, RECORDS, 0, 5) == INVALID


@pytest.mark.parametrize("body", [b"{not json", b'{"batchItemFailures": "1002"}',
                                  b'{"batchItemFailures": {"itemIdentifier": "1002"}}'])
def test_malformed_response_is_whole_failure(body: bytes) -> None:
    assert first_failure(body, RECORDS, 0, 5) == INVALID


def test_lowest_reported_identifier_wins() -> None:
    body = json.dumps({"batchItemFailures": [{"itemIdentifier": "1004"},
                                             {"itemIdentifier": "1002"},
                                             {"itemIdentifier": "1003"}]}).encode()
    assert first_failure(body, RECORDS, 0, 5) == 2


def test_identifier_outside_the_sub_batch_is_invalid() -> None:
    body = json.dumps({"batchItemFailures": [{"itemIdentifier": "1001"}]}).encode()
    assert first_failure(body, RECORDS, 2, 5) == INVALID
    assert first_failure(body, RECORDS, 0, 2) == 1
