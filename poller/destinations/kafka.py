"""On-failure records to a Kafka topic of the source cluster (``kafka://<topic>``).

The topic receives the failed records themselves: each keeps its key, value and headers, and
gains one header, ``esm-failure``, holding the JSON failure document (requestContext,
responseContext, KafkaBatchInfo, ...). AWS documents "the actual failed records along with
failure metadata" without the layout; this one is esm-poller's."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from poller.config_model import KafkaSource
from poller.destinations import DestinationError, FailureContext
from poller.sources.kafka_security import (
    KafkaAuthError,
    SecretFetcher,
    client_security,
    load_secrets,
)

FAILURE_HEADER = "esm-failure"


def topic_of(destination: str) -> str:
    return destination.removeprefix("kafka://")


class KafkaTopicDestination:
    def __init__(self, destination: str, source: KafkaSource,
                 fetch_secret: SecretFetcher | None = None) -> None:
        self.topic = topic_of(destination)
        self._source = source
        self._fetch_secret = fetch_secret
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                secrets = await load_secrets(self._source, self._fetch_secret)
                producer = AIOKafkaProducer(
                    **client_security(self._source, secrets),
                    bootstrap_servers=list(self._source.bootstrap_servers), acks="all",
                    enable_idempotence=True)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send(self, document: dict[str, Any], event_payload: bytes,
                   ctx: FailureContext) -> None:
        meta = json.dumps(document).encode()
        records = [r for rs in json.loads(event_payload)["records"].values() for r in rs]
        try:
            producer = await self._started()
            futures = []
            for r in records:
                headers = [(name, bytes(data or ())) for h in r["headers"]
                           for name, data in h.items()]
                headers.append((FAILURE_HEADER, meta))
                key = base64.b64decode(r["key"]) if r.get("key") is not None else None
                value = base64.b64decode(r["value"]) if r.get("value") is not None else None
                futures.append(await producer.send(self.topic, value=value, key=key,
                                                   headers=headers))
            for future in futures:
                await future
        except KafkaAuthError as exc:
            raise DestinationError(f"Kafka topic {self.topic}: {exc}", retryable=False) from exc
        except (KafkaError, OSError) as exc:
            raise DestinationError(f"Kafka topic {self.topic}: {type(exc).__name__}: {exc}",
                                   retryable=True) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
