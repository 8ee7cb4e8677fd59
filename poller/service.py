"""Builds the workers from a Config, runs them on one event loop, drains on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from typing import Any

import aiohttp
import structlog

from poller.awsclients import AwsClients
from poller.awsjson import AwsJsonClient, resolve_credentials
from poller.config_model import Config, Mapping
from poller.destinations import Destination
from poller.destinations.factory import make_destination
from poller.destinations.kafka import KafkaTopicDestination
from poller.events import dynamodb as dynamodb_events
from poller.events import kinesis as kinesis_events
from poller.invokers import Invoker
from poller.invokers.factory import make_invoker
from poller.leases import CheckpointStore
from poller.leases.coordinator import LeaseCoordinator
from poller.leases.dynamodb import DynamoDBLeaseStore
from poller.leases.sqlite import SqliteStore
from poller.observability.server import ObservabilityServer
from poller.processing.checkpoint import CheckpointWriter
from poller.processing.pipeline import ShardPipeline
from poller.processing.processor import Processor, ShardContext
from poller.processing.windows import Window, WindowedPipeline
from poller.sources import ShardSink
from poller.sources.dynamodb_streams import DynamoDBStreamsApi
from poller.sources.kafka import KafkaMapping
from poller.sources.kinesis import KinesisApi
from poller.sources.mq import MqMapping
from poller.sources.shards import ShardApi, ShardCoordinator
from poller.sources.sqs import PollerBudget, SqsApi, SqsMapping

log = structlog.get_logger(__name__)


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: CheckpointStore
        self.lease_store: DynamoDBLeaseStore | None = None
        if config.state.store == "dynamodb":
            self.store = self.lease_store = DynamoDBLeaseStore(config.aws, config.state)
        else:
            self.store = SqliteStore(config.state.path)
        self.lease_coordinators: list[LeaseCoordinator] = []
        self.writer = CheckpointWriter(self.store, config.tuning.checkpoint_flush_seconds)
        self.mappings: dict[str, ShardCoordinator | SqsMapping] = {}
        self.kafka_mappings: dict[str, KafkaMapping] = {}
        self.mq_mappings: dict[str, MqMapping] = {}
        self._sqs_budget = PollerBudget(config.tuning.sqs_max_pollers)
        self._invokers: list[Invoker] = []
        self._destinations: list[Destination] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: AwsClients | None = None
        self._http: aiohttp.ClientSession | None = None
        self._aws_json: list[AwsJsonClient] = []  # their lean connection pools close on stop
        self._server: ObservabilityServer | None = None
        self.started_at = time.monotonic()

    @property
    def metrics_port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def readiness(self) -> tuple[bool, str]:
        lines, ready = [], True
        runners: list[tuple[str, ShardCoordinator | SqsMapping | KafkaMapping | MqMapping]] = [
            *self.mappings.items(), *self.kafka_mappings.items(), *self.mq_mappings.items()]
        for uuid, m in runners:
            lines.append(f"{uuid}: {m.status.state} ({m.status.reason})")
            if m.mapping.enabled and not m.polling:
                ready = False
        return ready, "\n".join(lines) or "no mappings"

    async def _fetch_secret(self, arn: str) -> str:
        """A Secrets Manager secret's SecretString (Kafka SourceAccessConfigurations)."""
        assert self._clients is not None
        client = await self._clients.client("secretsmanager", arn.split(":")[3])
        response = await client.get_secret_value(SecretId=arn)
        return str(response["SecretString"])

    def _needs_aws(self) -> bool:
        """Kafka mappings with http/python targets and no AWS destination need no credentials."""
        for m in self.config.mappings:
            if not m.enabled:
                continue
            if m.mq is not None and m.target.type != "lambda":
                if m.mq.auth.secret.kind == "secretsmanager":
                    return True
                continue
            if m.kafka is None or m.target.type == "lambda":
                return True
            if m.on_failure_destination and not m.on_failure_destination.startswith("kafka://"):
                return True
            if any(a.secret.kind == "secretsmanager" for a in m.kafka.auth):
                return True
        return False

    async def start(self) -> None:
        cfg = self.config
        if self._needs_aws():
            resolve_credentials(cfg.aws)  # fail fast: invokes would otherwise retry forever
        await self.store.open()
        self.writer.start()
        self._clients = AwsClients(cfg.aws)
        await self._clients.__aenter__()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))
        if cfg.metrics.port:
            self._server = ObservabilityServer(cfg.metrics.host, cfg.metrics.port,
                                               self.readiness)
            await self._server.start()
        for mapping in cfg.mappings:
            if not mapping.enabled:
                log.info("mapping_disabled", mapping=mapping.uuid)
                continue
            await self._start_mapping(mapping)
        log.info("poller_started", mappings=len(self.mappings) + len(self.kafka_mappings)
                 + len(self.mq_mappings),
                 metrics_port=self.metrics_port)
        tune_gc()

    async def _start_mapping(self, mapping: Mapping) -> None:
        assert self._clients is not None and self._http is not None
        invoker = make_invoker(mapping, self._clients)
        self._invokers.append(invoker)
        destination: Destination | None = None
        if mapping.on_failure_destination:
            if mapping.on_failure_destination.startswith("kafka://"):
                assert mapping.kafka is not None
                destination = KafkaTopicDestination(mapping.on_failure_destination,
                                                    mapping.kafka, self._fetch_secret)
            else:
                destination = make_destination(mapping.on_failure_destination, self._clients)
            self._destinations.append(destination)
        tuning = self.config.tuning
        runner: ShardCoordinator | SqsMapping
        if mapping.mq is not None:
            mq = MqMapping(mapping, invoker, tuning, fetch_secret=self._fetch_secret)
            self.mq_mappings[mapping.uuid] = mq
            self._tasks.append(asyncio.create_task(mq.run(), name=f"mapping-{mapping.uuid}"))
            return
        if mapping.source == "sqs":
            # aiohttp, not the lean client: long polls (up to 20 s each, hundreds at once) would
            # queue behind its in-flight limit, and their per-call CPU does not matter
            client = self._aws_json_client(service="sqs", signing_name="sqs",
                                           target_prefix="AmazonSQS", json_version="1.0",
                                           aws=self.config.aws, session=self._http, lean=False)
            runner = SqsMapping(mapping, SqsApi(client), invoker, tuning, self._sqs_budget)
            self.mappings[mapping.uuid] = runner
            self._tasks.append(asyncio.create_task(runner.run(),
                                                   name=f"mapping-{mapping.uuid}"))
            return
        processor = Processor(mapping, invoker, destination, tuning)
        if mapping.kafka is not None:
            kafka = KafkaMapping(mapping, processor, tuning, fetch_secret=self._fetch_secret)
            self.kafka_mappings[mapping.uuid] = kafka
            self._tasks.append(asyncio.create_task(kafka.run(), name=f"mapping-{mapping.uuid}"))
            return
        api: ShardApi
        if mapping.source == "dynamodb":
            client = self._aws_json_client(service="dynamodbstreams", signing_name="dynamodb",
                                   target_prefix="DynamoDBStreams_20120810", json_version="1.0",
                                   aws=self.config.aws, session=self._http)
            api = DynamoDBStreamsApi(client, mapping, tuning)
            events: Any = dynamodb_events
        else:
            client = self._aws_json_client(service="kinesis", signing_name="kinesis",
                                   target_prefix="Kinesis_20131202", json_version="1.1",
                                   aws=self.config.aws, session=self._http)
            api = KinesisApi(client, mapping, tuning)
            events = kinesis_events
        checkpoints = await self.store.load(mapping.uuid)
        stream_arn = mapping.event_source_arn
        windows: dict[str, Window] = {}  # open tumbling windows, by shard
        if mapping.tumbling_window_in_seconds:
            for shard, text in (await self.store.load_windows(mapping.uuid)).items():
                window = windows[shard] = Window.from_json(text)
                if window.through is not None:  # resume after the window's last record
                    checkpoints[shard] = window.through

        def make_sink(shard_id: str) -> ShardSink:
            def info(records: Any) -> dict[str, Any]:
                result: dict[str, Any] = events.batch_info(shard_id, stream_arn, records)
                return result

            ctx = ShardContext(mapping, shard_id, events.BATCH_INFO_KEY, info)
            if mapping.tumbling_window_in_seconds:
                return WindowedPipeline(ctx, processor, self.writer, tuning, stream_arn,
                                        windows.get(shard_id), windows)
            return ShardPipeline(ctx, processor, self.writer, tuning)

        def initialize(initial: dict[str, str]) -> None:
            if self.lease_store is not None:
                return  # the lease coordinator creates each lease with its first position
            for shard, cp in initial.items():
                self.writer.set(mapping.uuid, shard, cp)

        state = self.config.state
        runner = ShardCoordinator(mapping, api, tuning, checkpoints, make_sink, initialize,
                                  watchdog_seconds=state.watchdog_seconds)
        self.mappings[mapping.uuid] = runner
        if self.lease_store is not None:
            leases = LeaseCoordinator(self.lease_store, mapping.uuid, runner, self.writer.flush,
                                      failover_seconds=state.failover_seconds,
                                      grace_seconds=state.handoff_grace_seconds,
                                      discard=self.writer.discard)
            self.lease_coordinators.append(leases)
            leases.start()
        self._tasks.append(asyncio.create_task(runner.run(), name=f"mapping-{mapping.uuid}"))

    async def stop(self) -> None:
        grace = self.config.tuning.drain_grace_seconds
        log.info("poller_draining", grace_seconds=grace)
        for leases in self.lease_coordinators:
            await leases.stop_taking()
        await asyncio.gather(*(m.stop(grace) for m in self.mappings.values()),
                             *(m.stop(grace) for m in self.kafka_mappings.values()),
                             *(m.stop(grace) for m in self.mq_mappings.values()),
                             return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.writer.close()
        for leases in self.lease_coordinators:  # after the final checkpoints
            await leases.release_all()
        for inv in self._invokers:
            with contextlib.suppress(Exception):
                await inv.close()
        for dest in self._destinations:
            with contextlib.suppress(Exception):
                await dest.close()
        if self._server is not None:
            await self._server.stop()
        if self._http is not None:
            await self._http.close()
        for aws_json in self._aws_json:
            aws_json.close()
        if self._clients is not None:
            await self._clients.__aexit__(None, None, None)
        await self.store.close()
        log.info("poller_stopped")

    def _aws_json_client(self, **kwargs: Any) -> AwsJsonClient:
        client = AwsJsonClient(**kwargs)
        self._aws_json.append(client)
        return client

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT (or ``stop`` is set), then drain and return."""
        if self._needs_aws():
            resolve_credentials(self.config.aws)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        try:
            await self.start()
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()


GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Fewer young-generation collections: every batch allocates thousands of short-lived
    containers (the parsed event of an in-process target, the clients' records) that the
    default threshold (700 net allocations) made the collector trace, and promote, while
    still in flight."""
    young, *older = gc.get_threshold()
    if young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
