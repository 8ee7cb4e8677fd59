"""`poller demo`: a local Kinesis-compatible server (moto), the function host running
poller.sample_handler, ~1,000 orders (one poison), and the poller between them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from poller.config_model import (
    AwsConfig,
    Config,
    Mapping,
    MetricsConfig,
    StateConfig,
    Target,
    TuningConfig,
)
from poller.observability import metrics

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sum(counter: Any, mapping: str) -> float:
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("mapping") == mapping:
                total += sample.value
    return total


def _setup_aws(endpoint: str, records: int) -> tuple[str, str, str]:
    import boto3

    kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION}
    kinesis = boto3.client("kinesis", **kw)
    kinesis.create_stream(StreamName="orders", ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName="orders",
                                             WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    sqs = boto3.client("sqs", **kw)
    queue_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    poison_at = records // 2
    batch: list[dict[str, Any]] = []
    for i in range(records):
        order = {"order_id": i, "customer": f"c{i % 37}", "amount": round(5 + (i % 50) * 1.5, 2)}
        if i == poison_at:
            order["poison"] = True
        batch.append({"Data": json.dumps(order).encode(), "PartitionKey": order["customer"]})
        if len(batch) == 500 or i == records - 1:
            kinesis.put_records(StreamName="orders", Records=batch)
            batch = []
    return (f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/orders", queue_url,
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-dlq")


async def run_demo(records: int = 1000) -> int:
    from moto.server import ThreadedMotoServer

    from poller import sample_handler
    from poller.functionhost import FunctionHost
    from poller.observability.logging import configure
    from poller.service import Service

    configure("warning", "console")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for var, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo"),
                       ("AWS_DEFAULT_REGION", REGION)):
        os.environ.setdefault(var, value)
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    host = FunctionHost(sample_handler.handler, account_id=ACCOUNT, region=REGION)
    await host.start()
    workdir = tempfile.mkdtemp(prefix="esm-poller-demo-")
    try:
        aws_endpoint = f"http://127.0.0.1:{port}"
        print(f"Kinesis-compatible server (moto) on {aws_endpoint}; "
              f"function host on {host.endpoint}")
        stream_arn, queue_url, dlq_arn = await asyncio.to_thread(_setup_aws, aws_endpoint,
                                                                 records)
        print(f"Put {records} orders into {stream_arn} (2 shards; order {records // 2} is poison)")
        mapping = Mapping(
            uuid="demo-orders", event_source_arn=stream_arn, function_name="orders-handler",
            starting_position="TRIM_HORIZON", batch_size=100, parallelization_factor=2,
            bisect_batch_on_function_error=True, maximum_retry_attempts=1,
            function_response_types=("ReportBatchItemFailures",),
            on_failure_destination=dlq_arn, target=Target(type="lambda"))
        config = Config(
            mappings=(mapping,),
            aws=AwsConfig(region=REGION, endpoint_url=aws_endpoint,
                          services={"lambda": _endpoint(host.endpoint)}),
            state=StateConfig(path=str(Path(workdir) / "state.db")),
            metrics=MetricsConfig(port=0),
            tuning=TuningConfig(retry_base_seconds=0.05, idle_poll_seconds=0.2,
                                shard_discovery_seconds=2.0))
        service = Service(config)
        started = time.monotonic()
        await service.start()
        try:
            deadline = started + 120
            while time.monotonic() < deadline:
                done = (_sum(metrics.records_processed, "demo-orders")
                        + _sum(metrics.records_onfailure_delivered, "demo-orders"))
                if done >= records:
                    break
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            await service.stop()
        dlq = await asyncio.to_thread(_receive_dlq, aws_endpoint, queue_url)
        _report(records, elapsed, sample_handler.stats, dlq)
        ok = sample_handler.stats["records"] == records - 1 and len(dlq) == 1
        print("\nDemo " + ("finished: every order was processed once, the poison order went to "
                           "the DLQ." if ok else "FAILED: see the numbers above."))
        return 0 if ok else 1
    finally:
        await host.stop()
        moto.stop()


def _endpoint(url: str) -> Any:
    from poller.config_model import ServiceEndpoint

    return ServiceEndpoint(endpoint_url=url)


def _receive_dlq(endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in resp.get("Messages", [])]


def _report(records: int, elapsed: float, stats: dict[str, Any],
            dlq: list[dict[str, Any]]) -> None:
    event = stats["first_event"] or {"Records": []}
    sample = dict(event, Records=event["Records"][:1])
    sizes = stats["batch_sizes"]
    print("\nThe function's first event (first record shown of "
          f"{len(event['Records'])}):")
    print(json.dumps(sample, indent=2))
    print(f"\nThe function processed {stats['records']} orders in {stats['invocations']} "
          f"successful invocations (batch sizes {min(sizes, default=0)}..{max(sizes, default=0)}),"
          f" total amount {stats['amount']:.2f}, in {elapsed:.1f} s.")
    for doc in dlq:
        info = doc.get("KinesisBatchInfo", {})
        print("\nOn-failure record in the SQS DLQ:")
        print(json.dumps(doc, indent=2))
        print(f"(poison record isolated by bisect: batchSize {info.get('batchSize')})")
    m = "demo-orders"
    print("\nMetrics (also at /metrics when metrics.port is set):")
    for label, counter in (("polled", metrics.records_polled),
                           ("invoked (incl. retries)", metrics.records_invoked),
                           ("processed", metrics.records_processed),
                           ("failed invokes (records)", metrics.records_failed),
                           ("on-failure delivered", metrics.records_onfailure_delivered),
                           ("dropped", metrics.records_dropped),
                           ("bisects", metrics.bisects)):
        print(f"  {label:28s} {int(_sum(counter, m))}")
