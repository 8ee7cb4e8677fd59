"""Every metric esm-poller exports, defined once. Labels: mapping (UUID), function, shard."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_M = ("mapping",)
_MS = ("mapping", "shard")

records_polled = Counter(
    "esm_records_polled", "Records read from the source (PolledEventCount).", _MS,
    registry=REGISTRY)
records_filtered = Counter(
    "esm_records_filtered", "Records dropped by FilterCriteria (FilteredOutEventCount).", _MS,
    registry=REGISTRY)
records_invoked = Counter(
    "esm_records_invoked", "Records sent in invocations, counted again on retries "
    "(InvokedEventCount).", _MS, registry=REGISTRY)
records_failed = Counter(
    "esm_records_failed", "Records in invocations that failed or reported item failures "
    "(FailedInvokeEventCount).", _MS, registry=REGISTRY)
records_dropped = Counter(
    "esm_records_dropped", "Records given up (retries exhausted, age exceeded, oversize) and NOT "
    "delivered to an on-failure destination (DroppedEventCount).", _MS, registry=REGISTRY)
records_onfailure_delivered = Counter(
    "esm_records_onfailure_delivered", "Records whose failure record reached the on-failure "
    "destination (OnFailureDestinationDeliveredEventCount).", _MS, registry=REGISTRY)
records_processed = Counter(
    "esm_records_processed", "Records whose invocation succeeded.", _MS, registry=REGISTRY)
iterator_age = Gauge(
    "esm_iterator_age_milliseconds", "Age of the last record of the latest batch when it was sent "
    "(IteratorAge).", _MS, registry=REGISTRY)
millis_behind_latest = Gauge(
    "esm_millis_behind_latest", "MillisBehindLatest from the latest GetRecords.", _MS,
    registry=REGISTRY)
invoke_duration = Histogram(
    "esm_invoke_duration_seconds", "Duration of one invoke call, by outcome.",
    ("mapping", "outcome"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
             900),
    registry=REGISTRY)
batch_records = Histogram(
    "esm_batch_records", "Records per invocation.", _M,
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000), registry=REGISTRY)
batch_bytes = Histogram(
    "esm_batch_bytes", "Payload bytes per invocation.", _M,
    buckets=(1024, 4096, 16384, 65536, 262144, 1048576, 2097152, 4194304, 6291456),
    registry=REGISTRY)
retries = Counter(
    "esm_retries", "Batch re-invocations, by reason (function_error, partial_failure, "
    "bad_response, throttled, invoke_error).", ("mapping", "reason"), registry=REGISTRY)
throttles = Counter(
    "esm_throttles", "Throttling seen, by where (invoke, source).", ("mapping", "where"),
    registry=REGISTRY)
bisects = Counter("esm_bisects", "Batches split in two after a function error.", _M,
                  registry=REGISTRY)
bad_responses = Counter(
    "esm_bad_responses", "Function responses that were not a valid partial batch response "
    "(treated as whole-batch failure).", _M, registry=REGISTRY)
oversize_records = Counter(
    "esm_oversize_records", "Records alone larger than the invoke payload limit.", _M,
    registry=REGISTRY)
onfailure_delivery_failures = Counter(
    "esm_onfailure_delivery_failures", "On-failure records that could not be delivered "
    "(DestinationDeliveryFailures).", _M, registry=REGISTRY)
poll_errors = Counter(
    "esm_poll_errors", "Source read errors, by kind (throttled, expired_iterator, not_found, "
    "error).", ("mapping", "kind"), registry=REGISTRY)
seconds_since_last_poll = Gauge(
    "esm_seconds_since_last_poll", "Seconds since the last successful read of the shard.", _MS,
    registry=REGISTRY)
checkpoints_written = Counter(
    "esm_checkpoints_written", "Checkpoint writes to the state store.", _M, registry=REGISTRY)
shards_owned = Gauge("esm_shards", "Shards being read.", _M, registry=REGISTRY)
mapping_state = Gauge(
    "esm_mapping_state", "1 for the mapping's current state (Creating, Enabled, Disabled, "
    "Problem).", ("mapping", "state"), registry=REGISTRY)
inflight_records = Gauge(
    "esm_inflight_records", "Records read but not yet done (not checkpointable yet).", _MS,
    registry=REGISTRY)
offset_lag = Gauge(
    "esm_offset_lag", "Kafka: records in the partition after the group's committed offset "
    "(OffsetLag).", _MS, registry=REGISTRY)
sqs_pollers = Gauge(
    "esm_sqs_pollers", "Concurrent ReceiveMessage pollers of an SQS mapping.", _M,
    registry=REGISTRY)
sqs_messages_deleted = Counter(
    "esm_sqs_messages_deleted", "SQS messages deleted after their invocation succeeded.", _M,
    registry=REGISTRY)
leases_held = Gauge(
    "esm_leases_held", "Shard leases this replica holds in the DynamoDB lease table.", _M,
    registry=REGISTRY)
leases_taken = Counter(
    "esm_leases_taken", "Leases taken because they were free or expired.", _M,
    registry=REGISTRY)
leases_stolen = Counter(
    "esm_leases_stolen", "Leases taken from a live owner that did not hand them over in time.",
    _M, registry=REGISTRY)
leases_lost = Counter(
    "esm_leases_lost", "Leases this replica lost, by reason (renew_refused, checkpoint_refused, "
    "taken, expired).", ("mapping", "reason"), registry=REGISTRY)
leases_released = Counter(
    "esm_leases_released", "Leases given up gracefully after their final checkpoint (hand-off, "
    "shard end, SIGTERM).", _M, registry=REGISTRY)
checkpoints_refused = Counter(
    "esm_checkpoints_refused", "Checkpoint writes refused by the lease table's fencing (the lease "
    "was no longer held).", _M, registry=REGISTRY)
lease_errors = Counter(
    "esm_lease_errors", "Lease table calls that failed (throttling, unreachable).", _M,
    registry=REGISTRY)
lease_balance_seconds = Histogram(
    "esm_lease_balance_seconds", "Time from seeing the leases unbalanced (free leases, or held "
    "counts differing by more than one) to balanced again.", _M,
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600), registry=REGISTRY)
watchdog_restarts = Counter(
    "esm_watchdog_restarts", "Shard readers restarted because the shard had lag and its "
    "checkpoint did not move for the watchdog time.", _M, registry=REGISTRY)
mq_queue_depth = Gauge(
    "esm_mq_queue_depth", "Amazon MQ: messages ready in the queue, as the broker last reported "
    "(RabbitMQ).", _MS, registry=REGISTRY)
mq_messages_acked = Counter(
    "esm_mq_messages_acked", "Amazon MQ messages acknowledged (processed or filtered out).", _M,
    registry=REGISTRY)
mq_messages_redelivered = Counter(
    "esm_mq_messages_redelivered", "Amazon MQ messages handed back to the broker after a failed "
    "invocation, for its redelivery (and dead-lettering).", _M, registry=REGISTRY)
mq_messages_dead_lettered = Counter(
    "esm_mq_messages_dead_lettered", "ActiveMQ messages sent to the broker's DLQ after the "
    "redelivery limit.", _M, registry=REGISTRY)
mq_reconnects = Counter(
    "esm_mq_reconnects", "Amazon MQ broker connections lost or refused, by kind (authn, "
    "connection, queue).", ("mapping", "kind"), registry=REGISTRY)
