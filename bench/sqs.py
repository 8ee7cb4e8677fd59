"""SQS source throughput: messages/s from a moto server queue into an in-process no-op handler.

Fills a queue with ``--messages`` messages, then runs the real service (python target
``tests.functions.noop:handler``) until every message is processed, once per batch size.
moto serves every SQS call from one Python process (a ReceiveMessage of 10 takes it ~0.35 s
on a 2-core machine), so messages/s measures moto; ``poller CPU ms/msg`` is the poller's own
process CPU time per message (moto runs in another process): 1000 / it is the rate one core
of poller could sustain against a fast queue.

Run ``python -m bench.sqs [--messages N] [--size BYTES] [--batch-sizes 10,100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Sequence

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
from poller.service import Service
from tests.helpers import wait_for


def _fill(endpoint: str, count: int, size: int) -> tuple[str, str]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    body = "x" * size
    for i in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": body} for n in range(min(10, count - i))])
    return url, arn


def _processed(uuid_: str) -> float:
    total = 0.0
    for family in metrics.records_processed.collect():
        for s in family.samples:
            if s.labels.get("mapping") == uuid_ and s.name.endswith("_total"):
                total += s.value
    return total


async def _run(endpoint: str, arn: str, batch_size: int, count: int,
               state: str) -> tuple[float, float]:
    mapping = Mapping(uuid=f"bench-{uuid.uuid4().hex[:8]}", event_source_arn=arn,
                      function_name="noop", batch_size=batch_size,
                      maximum_batching_window_in_seconds=0 if batch_size <= 10 else 1,
                      target=Target(type="python", handler="tests.functions.noop:handler"))
    config = Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1", endpoint_url=endpoint),
                    state=StateConfig(path=state), metrics=MetricsConfig(port=0),
                    tuning=TuningConfig(sqs_wait_time_seconds=1))
    service = Service(config)
    await service.start()
    try:
        # timed from the first batch on: startup (clients, queue URL) is not throughput
        first = await wait_for(lambda: _processed(mapping.uuid), 600, interval=0.01)
        t0, c0 = time.perf_counter(), time.process_time()
        await wait_for(lambda: _processed(mapping.uuid) >= count, 600, interval=0.01)
        return ((time.perf_counter() - t0) / (count - first),
                (time.process_time() - c0) / (count - first))
    finally:
        await service.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqs", description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batch-sizes", default="10,100")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")  # moto accepts any credentials
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

    import tempfile

    from tests.infra.servers import start

    server = start("moto")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{'BatchSize':>9}  {'messages':>8}  {'messages/s':>10}  "
                  f"{'poller CPU ms/msg':>17}")
            for n, batch_size in enumerate(int(b) for b in args.batch_sizes.split(",")):
                _url, arn = _fill(server.endpoint, args.messages, args.size)
                per_msg, cpu = asyncio.run(_run(server.endpoint, arn, batch_size,
                                                args.messages, f"{tmp}/state-{n}.db"))
                print(f"{batch_size:>9}  {args.messages:>8}  {1 / per_msg:>10.0f}  "
                      f"{1000 * cpu:>17.3f}", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
