"""SQS: partial batch responses (ReportBatchItemFailures with messageIds, AWS's cases) and the
process-wide poller budget."""

from __future__ import annotations

import pytest

from poller.sources.sqs import PollerBudget, failed_ids

IDS = {"m1", "m2", "m3"}


@pytest.mark.parametrize("payload", [
    b"", b"null", b'""', b"{}", b"[]", b'{"batchItemFailures": []}',
    b'{"batchItemFailures": null}', b'"ok"', b"42",
])
def test_complete_success(payload: bytes) -> None:
    assert failed_ids(payload, IDS) == set()


def test_reported_failures() -> None:
    payload = b'{"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}'
    assert failed_ids(payload, IDS) == {"m2", "m3"}


@pytest.mark.parametrize("payload", [
    b"{not json",
    b'{"batchItemFailures": [{"itemIdentifier": ""}]}',
    b'{"batchItemFailures": [{"itemIdentifier": null}]}',
    b'{"batchItemFailures": [{"foo": "m1"}]}',
    b'{"batchItemFailures": [{"itemIdentifier": "m9"}]}',
    b'{"batchItemFailures": [{"itemIdentifier": 1}]}',
    b'{"batchItemFailures": ["m1"]}',
    b'{"batchItemFailures": "m1"}',
])
def test_complete_failure(payload: bytes) -> None:
    assert failed_ids(payload, IDS) is None


def test_poller_budget_caps_pollers_across_mappings() -> None:
    budget = PollerBudget(2)
    assert budget.take() and budget.take()
    assert not budget.take()  # the cap
    assert budget.take(force=True)  # every mapping keeps at least its first pollers
    budget.give()
    budget.give()
    assert budget.used == 1 and budget.take()
