"""What one queue-source invocation counts (poller/sources/queue_metrics.py), per outcome."""

from __future__ import annotations

import pytest

from poller.invokers import InvokeResult, Outcome
from poller.observability.metrics import REGISTRY
from poller.sources.queue_metrics import QueueMetrics
from tests.helpers import unique_name

PAYLOAD = b'{"Records": []}'


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _Answer:
    """An invoker answering every payload with one result; notes the in-flight gauge."""

    def __init__(self, result: InvokeResult, mapping: str) -> None:
        self.result = result
        self.mapping = mapping
        self.inflight_seen: list[float] = []

    async def invoke(self, payload: bytes) -> InvokeResult:
        self.inflight_seen.append(value("esm_inflight_records", mapping=self.mapping,
                                        shard="q"))
        return self.result

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(("result", "failed", "throttles"), [
    (InvokeResult(200), 0, 0),
    (InvokeResult(200, function_error="Unhandled"), 3, 0),
    (InvokeResult(429), 3, 1),
    (InvokeResult(0, error="connection refused"), 3, 0),
])
async def test_invoke_counts_by_outcome(result: InvokeResult, failed: int,
                                        throttles: int) -> None:
    mapping = unique_name("m")
    series = QueueMetrics(mapping, "q")
    invoker = _Answer(result, mapping)
    assert await series.invoke(invoker, PAYLOAD, 3) is result
    assert invoker.inflight_seen == [3.0]
    assert value("esm_inflight_records", mapping=mapping, shard="q") == 0
    assert value("esm_records_invoked_total", mapping=mapping, shard="q") == 3
    assert value("esm_records_failed_total", mapping=mapping, shard="q") == failed
    assert value("esm_throttles_total", mapping=mapping, where="invoke") == throttles
    assert value("esm_batch_records_sum", mapping=mapping) == 3
    assert value("esm_batch_bytes_sum", mapping=mapping) == len(PAYLOAD)
    counts = {o: value("esm_invoke_duration_seconds_count", mapping=mapping, outcome=o.value)
              for o in Outcome}
    assert counts == {o: 1.0 if o is result.outcome else 0.0 for o in Outcome}
