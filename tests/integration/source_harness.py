"""Shared pieces for the DynamoDB Streams and SQS source tests: a recording Lambda handler that
keeps whole events, and a config builder pointing every AWS service at the test servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
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
from tests.integration.recorder import BatchRecorder
from tests.integration.recorder import function_host as function_host

FAST = TuningConfig(shard_discovery_seconds=0.5, idle_poll_seconds=0.1,
                    min_poll_interval_seconds=0.05, retry_base_seconds=0.02,
                    retry_max_seconds=0.1, throttle_base_seconds=0.02, throttle_max_seconds=0.2,
                    checkpoint_flush_seconds=0.05, drain_grace_seconds=10,
                    ddb_poll_interval_seconds=0.05, sqs_wait_time_seconds=1)


@dataclass
class EventRecorder(BatchRecorder[list[dict[str, Any]], dict[str, Any]]):
    """A Lambda handler recording every event's records; ``behave(records)`` may raise or return
    a response. ``overlaps`` counts batches holding a key (``key_of``) that another batch being
    processed holds."""

    behave: Callable[[list[dict[str, Any]]], Any] | None = None
    key_of: Callable[[dict[str, Any]], str] = lambda r: ""
    overlaps: int = 0
    _keys: dict[str, int] = field(default_factory=dict)

    def split(self, event: dict[str, Any], n: int
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        records: list[dict[str, Any]] = event["Records"]
        return records, records

    def started(self, items: list[dict[str, Any]]) -> None:
        for k in {self.key_of(r) for r in items}:
            if self._keys.get(k):
                self.overlaps += 1
            self._keys[k] = self._keys.get(k, 0) + 1

    def finished(self, items: list[dict[str, Any]]) -> None:
        for k in {self.key_of(r) for r in items}:
            self._keys[k] -= 1

    def respond(self, event: dict[str, Any], items: list[dict[str, Any]]) -> Any:
        return self.behave(items) if self.behave else None

    def seen(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for batch in self.events for r in batch]


def source_config(mapping: Mapping, *, lambda_endpoint: str, state: Path,
                  moto: str | None = None, dynamodb: str | None = None,
                  tuning: TuningConfig = FAST) -> Config:
    services = {"lambda": ServiceEndpoint(endpoint_url=lambda_endpoint)}
    if moto:
        for svc in ("sqs", "sns", "s3"):
            services[svc] = ServiceEndpoint(endpoint_url=moto)
    if dynamodb:
        services["dynamodbstreams"] = ServiceEndpoint(endpoint_url=dynamodb)
        services["dynamodb"] = ServiceEndpoint(endpoint_url=dynamodb)
    return Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1", services=services),
                  state=StateConfig(path=str(state)), metrics=MetricsConfig(port=0),
                  tuning=tuning)


def source_mapping(arn: str, **kw: Any) -> Mapping:
    base: dict[str, Any] = dict(uuid=f"m-{uuid.uuid4().hex[:12]}",
                                event_source_arn=arn, function_name="recorder",
                                batch_size=10, target=Target(type="lambda"))
    base.update(kw)
    return Mapping(**base)
