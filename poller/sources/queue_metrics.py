"""The series a queue source (SQS, Amazon MQ) keeps for one mapping and queue, and the
invocation they measure: batch records and bytes, records invoked and in flight, duration by
outcome, failed records and throttles."""

from __future__ import annotations

import time

from poller.invokers import Invoker, InvokeResult, Outcome
from poller.observability import metrics


class QueueMetrics:
    def __init__(self, mapping: str, queue: str) -> None:
        labels = (mapping, queue)
        self.polled = metrics.records_polled.labels(*labels)
        self.invoked = metrics.records_invoked.labels(*labels)
        self.processed = metrics.records_processed.labels(*labels)
        self.failed = metrics.records_failed.labels(*labels)
        self.filtered = metrics.records_filtered.labels(*labels)
        self.age = metrics.iterator_age.labels(*labels)
        self.inflight = metrics.inflight_records.labels(*labels)
        self.throttles = metrics.throttles.labels(mapping, "invoke")
        self.duration = {o: metrics.invoke_duration.labels(mapping, o.value) for o in Outcome}
        self.batch_records = metrics.batch_records.labels(mapping)
        self.batch_bytes = metrics.batch_bytes.labels(mapping)

    async def invoke(self, invoker: Invoker, payload: bytes, n: int) -> InvokeResult:
        """One invocation of ``n`` records, counted; when it does not succeed its records
        count as failed (and a throttle as one)."""
        self.batch_records.observe(n)
        self.batch_bytes.observe(len(payload))
        self.invoked.inc(n)
        self.inflight.inc(n)
        t0 = time.perf_counter()
        try:
            result = await invoker.invoke(payload)
        finally:
            self.inflight.dec(n)
        self.duration[result.outcome].observe(time.perf_counter() - t0)
        if result.outcome is not Outcome.OK:
            self.failed.inc(n)
            if result.outcome is Outcome.THROTTLED:
                self.throttles.inc()
        return result
