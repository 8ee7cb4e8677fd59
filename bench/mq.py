"""Amazon MQ source throughput: messages/s from a real broker queue into an in-process no-op
function, per broker, against a bare consume loop on the same client library in the same run.

For each broker (RabbitMQ from Debian's rabbitmq-server, ActiveMQ Classic from Debian's
activemq) two queues are filled with ``--messages`` messages of ``--size`` bytes. The bare loop
drains one with the client the poller uses (RabbitMQ: aio-pika's raw deliveries, prefetch
BatchSize, one multiple-ack per BatchSize messages; ActiveMQ: stomp.py, client-individual acks)
and does nothing else. The poller (python target ``tests.functions.noop:handler``, BatchSize
``--batch-size``, window 0) drains the other. Both are timed from their first message on. The
ratio line is poller messages/s / bare messages/s (higher is better).

Run ``python -m bench.mq [--messages N] [--size BYTES] [--batch-size N]
[--brokers rabbitmq,activemq]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.sqs import _processed
from poller.config_model import (
    AwsConfig,
    Config,
    KafkaAuth,
    Mapping,
    MetricsConfig,
    MqSource,
    SecretRef,
    StateConfig,
    Target,
)
from poller.service import Service
from tests.helpers import wait_for

ARN = "arn:aws:mq:us-east-1:000000000000:broker:bench:b-0123456789ab"


def _result(count: float, cpu: float, wall: float) -> dict[str, float]:
    return {"messages_per_s": count / wall if wall else 0.0,
            "cpu_ms_per_1k": 1e6 * cpu / count if count else 0.0, "timed_messages": count}


async def _rabbit(endpoint: str) -> Any:
    import aio_pika

    from tests.infra.servers import MQ_PASSWORD, MQ_USER

    parts = urlsplit(endpoint)
    return await aio_pika.connect(host=parts.hostname or "", port=parts.port or 0,
                                  login=MQ_USER, password=MQ_PASSWORD)


async def _rabbit_fill(endpoint: str, queue: str, count: int, size: int) -> None:
    import aio_pika

    connection = await _rabbit(endpoint)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        body = b"x" * size
        for _ in range(count):
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def _rabbit_bare(endpoint: str, queue: str, count: int, batch_size: int) -> dict[str, float]:
    connection = await _rabbit(endpoint)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=batch_size)
        raw = await channel.get_underlay_channel()
        done = asyncio.get_running_loop().create_future()
        seen = [0]
        start: list[float] = []

        async def on_message(message: Any) -> None:
            if not seen[0]:
                start.extend((time.perf_counter(), time.process_time()))
            seen[0] += 1
            if seen[0] % batch_size == 0 or seen[0] == count:
                await raw.basic_ack(message.delivery_tag, multiple=True)
            if seen[0] == count and not done.done():
                done.set_result(None)

        await raw.basic_consume(queue, on_message, no_ack=False)
        await asyncio.wait_for(done, 600)
        return _result(count - 1, time.process_time() - start[1],
                       time.perf_counter() - start[0])


def _amq_fill(endpoint: str, queue: str, count: int, size: int) -> None:
    import stomp

    from tests.infra.servers import MQ_PASSWORD, MQ_USER

    parts = urlsplit(endpoint)
    conn = stomp.Connection12([(parts.hostname, parts.port)], auto_content_length=False)
    conn.connect(MQ_USER, MQ_PASSWORD, wait=True)
    body = "x" * size
    for _ in range(count):
        conn.send(f"/queue/{queue}", body)
    conn.disconnect()


def _amq_bare(endpoint: str, queue: str, count: int, batch_size: int) -> dict[str, float]:
    import stomp

    from tests.infra.servers import MQ_PASSWORD, MQ_USER

    parts = urlsplit(endpoint)
    conn = stomp.Connection12([(parts.hostname, parts.port)], auto_decode=False)
    done = threading.Event()
    seen = [0]
    start: list[float] = []

    class Listener(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: Any) -> None:
            if not seen[0]:
                start.extend((time.perf_counter(), time.process_time()))
            seen[0] += 1
            conn.ack(frame.headers["ack"])
            if seen[0] == count:
                done.set()

    conn.set_listener("bare", Listener())
    conn.connect(MQ_USER, MQ_PASSWORD, wait=True)
    conn.subscribe(f"/queue/{queue}", id="1", ack="client-individual",
                   headers={"activemq.prefetchSize": str(batch_size)})
    done.wait(600)
    result = _result(count - 1, time.process_time() - start[1], time.perf_counter() - start[0])
    conn.disconnect()
    return result


async def _poller(engine: str, endpoint: str, queue: str, count: int, batch_size: int,
                  tmp: str) -> dict[str, float]:
    from tests.infra.servers import MQ_PASSWORD, MQ_USER

    secret = Path(tmp) / f"secret-{queue}.json"
    secret.write_text(json.dumps({"username": MQ_USER, "password": MQ_PASSWORD}))
    mapping = Mapping(
        uuid=f"bench-{uuid.uuid4().hex[:8]}", event_source_arn=ARN, function_name="noop",
        batch_size=batch_size, maximum_batching_window_in_seconds=0,
        target=Target(type="python", handler="tests.functions.noop:handler"),
        mq=MqSource(engine=engine, queue=queue, endpoints=(endpoint,),  # type: ignore[arg-type]
                    auth=KafkaAuth("BASIC_AUTH", "bench", SecretRef("file", str(secret)))))
    config = Config(mappings=(mapping,), aws=AwsConfig(region="us-east-1"),
                    state=StateConfig(path=f"{tmp}/state-{queue}.db"),
                    metrics=MetricsConfig(port=0))
    service = Service(config)
    await service.start()
    try:
        first = await wait_for(lambda: _processed(mapping.uuid), 600, interval=0.002,
                               message="the poller processed nothing")
        t0, c0 = time.perf_counter(), time.process_time()
        await wait_for(lambda: _processed(mapping.uuid) >= count, 600, interval=0.005,
                       message="the poller did not process every message")
        return _result(count - first, time.process_time() - c0, time.perf_counter() - t0)
    finally:
        await service.stop()


def _one(engine: str, messages: int, size: int, batch_size: int, tmp: str) -> dict[str, Any]:
    from tests.infra.servers import start

    server = start(engine)
    try:
        bare_q, poller_q = f"bench-bare-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
        if engine == "rabbitmq":
            for q in (bare_q, poller_q):
                asyncio.run(_rabbit_fill(server.endpoint, q, messages, size))
            bare = asyncio.run(_rabbit_bare(server.endpoint, bare_q, messages, batch_size))
        else:
            for q in (bare_q, poller_q):
                _amq_fill(server.endpoint, q, messages, size)
            bare = _amq_bare(server.endpoint, bare_q, messages, batch_size)
        poller = asyncio.run(_poller(engine, server.endpoint, poller_q, messages, batch_size,
                                     tmp))
    finally:
        server.stop(30)
    return {"poller": poller, "bare": bare,
            "ratio": poller["messages_per_s"] / bare["messages_per_s"]}


def run(messages: int = 20_000, size: int = 100, batch_size: int = 100,
        brokers: str = "rabbitmq,activemq") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        results = {engine: _one(engine, messages, size, batch_size, tmp)
                   for engine in brokers.split(",")}
    return {"messages": messages, "size": size, "batch_size": batch_size, "results": results}


def report(result: dict[str, Any]) -> str:
    lines = [f"{result['messages']:,} messages x {result['size']:,} B, BatchSize "
             f"{result['batch_size']}, real brokers, in-process no-op function",
             f"  {'broker':<10}{'path':<8}{'messages/s':>12}{'CPU ms per 1k':>15}"]
    ratios = []
    for engine, r in result["results"].items():
        for name in ("poller", "bare"):
            x = r[name]
            lines.append(f"  {engine:<10}{name:<8}{x['messages_per_s']:>12.0f}"
                         f"{x['cpu_ms_per_1k']:>15.1f}")
        bare = "aio-pika consume" if engine == "rabbitmq" else "stomp.py consume"
        ratios.append(f"{engine} {r['ratio']:.2f}x vs bare {bare}")
    lines.append(f"  ratio: poller messages/s: {', '.join(ratios)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--brokers", default="rabbitmq,activemq")
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    result = run(args.messages, args.size, args.batch_size, args.brokers)
    print(report(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
