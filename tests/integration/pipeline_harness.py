"""Runs the real service against real servers: a Kinesis server, the function host running a
recording handler over the Lambda Invoke API, and moto for destinations."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from poller.config_model import (
    AwsConfig,
    Config,
    Mapping,
    MetricsConfig,
    ServiceEndpoint,
    StateConfig,
    Target,
    TuningConfig,
)
from poller.observability import metrics
from poller.service import Service
from tests.integration.recorder import SeenRecorder, function_host

FAST = TuningConfig(shard_discovery_seconds=0.5, idle_poll_seconds=0.1,
                    min_poll_interval_seconds=0.05, retry_base_seconds=0.02,
                    retry_max_seconds=0.1, throttle_base_seconds=0.02, throttle_max_seconds=0.1,
                    checkpoint_flush_seconds=0.05, drain_grace_seconds=10)


@dataclass
class Seen:
    shard: str
    seq: str
    key: str
    data: bytes
    invocation: int


@dataclass
class Recorder(SeenRecorder[Seen]):
    """A Lambda handler that records the Kinesis events it receives; ``behave`` may raise or
    return a response."""

    def split(self, event: dict[str, Any], n: int) -> tuple[dict[str, Any], list[Seen]]:
        return event, [Seen(r["eventID"].split(":", 1)[0], r["kinesis"]["sequenceNumber"],
                            r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"]),
                            n)
                       for r in event["Records"]]

    def ok_data(self) -> list[bytes]:
        with self.lock:
            return [s.data for s in self.ok]


def mapping_for(stream_arn: str, **kw: Any) -> Mapping:
    base: dict[str, Any] = dict(uuid=f"m-{stream_arn.rsplit('/', 1)[1]}",
                                event_source_arn=stream_arn, function_name="recorder",
                                starting_position="TRIM_HORIZON", batch_size=10,
                                target=Target(type="lambda"))
    base.update(kw)
    return Mapping(**base)


def config_for(mapping: Mapping, kinesis: str, lambda_endpoint: str, state: Path,
               moto: str | None = None, tuning: TuningConfig = FAST) -> Config:
    services = {"kinesis": ServiceEndpoint(endpoint_url=kinesis),
                "lambda": ServiceEndpoint(endpoint_url=lambda_endpoint)}
    for svc in ("sqs", "sns", "s3"):
        if moto:
            services[svc] = ServiceEndpoint(endpoint_url=moto)
    return Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1", services=services),
                  state=StateConfig(path=str(state)), metrics=MetricsConfig(port=0),
                  tuning=tuning)


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Service]:
    service = Service(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def counter(metric: Any, mapping: str, **labels: str) -> float:
    total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            if sample.labels.get("mapping") != mapping:
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


__all__ = ["FAST", "Recorder", "Seen", "config_for", "counter", "function_host", "mapping_for",
           "metrics", "replace", "running"]
