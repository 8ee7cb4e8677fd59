"""Typed configuration objects (the result of parsing and validating a config file).

Field names mirror AWS's CreateEventSourceMapping parameters in snake_case; ``poller.config``
parses the PascalCase YAML into these objects and reports every invalid field at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StartingPosition = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
TargetType = Literal["lambda", "http", "python"]
LambdaClient = Literal["fast", "aiobotocore"]
SERVICES = ("kinesis", "lambda", "sqs", "sns", "s3", "dynamodb", "dynamodbstreams", "sts",
            "secretsmanager")


@dataclass(frozen=True, slots=True)
class ServiceEndpoint:
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class AwsConfig:
    region: str = "us-east-1"
    endpoint_url: str | None = None
    services: dict[str, ServiceEndpoint] = field(default_factory=dict)
    # explicit credentials are optional; the standard credential chain applies otherwise
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def endpoint_for(self, service: str) -> str | None:
        svc = self.services.get(service)
        if svc is not None and svc.endpoint_url:
            return svc.endpoint_url
        return self.endpoint_url

    def region_for(self, service: str) -> str:
        svc = self.services.get(service)
        if svc is not None and svc.region:
            return svc.region
        return self.region


@dataclass(frozen=True, slots=True)
class StateConfig:
    store: Literal["sqlite", "dynamodb"] = "sqlite"
    path: str = "./poller-state.db"  # sqlite
    # dynamodb: the KCL-schema lease table shared by every replica (one item per mapping+shard)
    table: str = "esm-poller-leases"
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = "PAY_PER_REQUEST"
    read_capacity: int = 10  # PROVISIONED only
    write_capacity: int = 10
    failover_seconds: float = 10.0  # a lease whose counter did not move for this long is free
    handoff_grace_seconds: float = 10.0  # rebalancing: time for in-flight batches to finish
    endpoint_url: str | None = None  # DynamoDB Local; else aws.dynamodb / aws.endpoint_url
    # both stores: restart a shard's reader when it has lag and its checkpoint has not moved
    # for this long (0 = off)
    watchdog_seconds: float = 1200.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    port: int = 9464  # 0 = disabled
    host: str = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class TuningConfig:
    """Poller timings (not AWS parameters). Defaults follow Lambda's observed behaviour."""

    shard_discovery_seconds: float = 10.0  # periodic ListShards
    idle_poll_seconds: float = 1.0  # GetRecords cadence when caught up (AWS: 1/s/shard)
    min_poll_interval_seconds: float = 0.2  # never more than 5 GetRecords/s/shard
    retry_base_seconds: float = 0.5  # backoff between retries of a failed batch
    retry_max_seconds: float = 30.0
    throttle_base_seconds: float = 0.2  # backoff after throttles / service errors
    throttle_max_seconds: float = 10.0
    checkpoint_flush_seconds: float = 0.2  # coalescing of checkpoint writes
    drain_grace_seconds: float = 30.0  # SIGTERM: time to finish in-flight batches
    destination_attempts: int = 5  # attempts to deliver one on-failure record
    # AWS's FilterCriteria quota: 5 filters per mapping, raisable to 10 on request
    max_filters_per_mapping: int = 5
    kafka_session_timeout_seconds: float = 10.0  # a dead consumer's partitions move after this
    ddb_poll_interval_seconds: float = 0.25  # DynamoDB Streams: 4 GetRecords/s/shard (AWS's rate)
    sqs_wait_time_seconds: int = 20  # ReceiveMessage long poll
    sqs_max_pollers: int = 1000  # global cap on concurrent SQS pollers of one process


@dataclass(frozen=True, slots=True)
class Target:
    type: TargetType = "lambda"
    url: str | None = None  # http
    handler: str | None = None  # python: "pkg.module:function"
    timeout_seconds: float = 900.0  # http/lambda read timeout
    headers: dict[str, str] = field(default_factory=dict)  # http only
    qualifier: str | None = None  # lambda: version or alias
    # lambda: "fast" = SigV4-signed aiohttp (poller/invokers/lambda_fast.py), else aiobotocore
    client: LambdaClient = "fast"
    role_arn: str | None = None  # the events' invokeIdentityArn (AWS: the function's role)
    # beyond AWS, Kafka only: a partition's records in up to 10 lanes by record key (per-key
    # order kept, the commit is the contiguous watermark); AWS reads a partition serially
    key_parallelism: int = 1


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a SourceAccessConfigurations secret's JSON comes from: a file or an environment
    variable (``secrets`` in the config file, keyed by the secret ARN), else AWS Secrets
    Manager (GetSecretValue of the ARN)."""

    kind: Literal["file", "env", "secretsmanager"]
    name: str  # the file path, the variable name or the secret ARN


@dataclass(frozen=True, slots=True)
class KafkaAuth:
    """A SourceAccessConfigurations entry that authenticates (Type, URI, its secret)."""

    type: str  # BASIC_AUTH, SASL_SCRAM_256_AUTH, ..., SERVER_ROOT_CA_CERTIFICATE
    uri: str
    secret: SecretRef


@dataclass(frozen=True, slots=True)
class KafkaSource:
    """A Kafka event source: Amazon MSK (``managed``, by cluster ARN) or self-managed."""

    topic: str
    bootstrap_servers: tuple[str, ...]  # host:port
    consumer_group_id: str  # AWS default: the mapping's UUID
    managed: bool  # MSK ("aws:kafka" events) or self-managed ("SelfManagedKafka")
    region: str = "us-east-1"  # self-managed sources have no ARN to take it from
    # SourceAccessConfigurations accepted without effect here (VPC_SUBNET, VPC_SECURITY_GROUP)
    access: tuple[tuple[str, str], ...] = ()
    auth: tuple[KafkaAuth, ...] = ()  # at most one client auth, plus a server root CA

    @property
    def bootstrap(self) -> str:
        return ",".join(self.bootstrap_servers)


@dataclass(frozen=True, slots=True)
class MqSource:
    """An Amazon MQ event source: one queue on a RabbitMQ or ActiveMQ broker. The broker's
    endpoints come from the config's ``mq.brokers`` (what DescribeBroker would return)."""

    engine: Literal["rabbitmq", "activemq"]
    queue: str  # Queues[0]
    endpoints: tuple[str, ...]  # amqp[s]://host:port (RabbitMQ), stomp[+ssl]://host:port (ActiveMQ)
    auth: KafkaAuth  # BASIC_AUTH: the secret holding {"username", "password"}
    virtual_host: str = "/"  # RabbitMQ: SourceAccessConfigurations VIRTUAL_HOST

    @property
    def tls(self) -> bool:
        return self.endpoints[0].split("://", 1)[0] in ("amqps", "stomp+ssl")


@dataclass(frozen=True, slots=True)
class Mapping:
    uuid: str
    event_source_arn: str
    function_name: str
    enabled: bool = True
    batch_size: int = 100
    maximum_batching_window_in_seconds: float = 0  # whole seconds in config; Kafka's default 0.5
    starting_position: StartingPosition | None = None
    starting_position_timestamp: float | None = None
    maximum_record_age_in_seconds: int = -1
    maximum_retry_attempts: int = -1
    bisect_batch_on_function_error: bool = False
    parallelization_factor: int = 1
    on_failure_destination: str | None = None
    function_response_types: tuple[str, ...] = ()
    filter_patterns: tuple[str, ...] = ()  # FilterCriteria.Filters[*].Pattern (validated)
    tumbling_window_in_seconds: int = 0  # 0 = off
    target: Target = field(default_factory=Target)
    # accepted and validated for AWS compatibility; no runtime effect in esm-poller
    kms_key_arn: str | None = None  # AWS: encrypts FilterCriteria only
    tags: dict[str, str] = field(default_factory=dict)
    metrics_config: tuple[str, ...] = ()  # AWS MetricsConfig.Metrics; Prometheus metrics always on
    kafka: KafkaSource | None = None  # Kafka sources (self-managed ones have no event_source_arn)
    maximum_concurrency: int | None = None  # SQS ScalingConfig.MaximumConcurrency (2..1000)
    mq: MqSource | None = None  # Amazon MQ sources (RabbitMQ, ActiveMQ)

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types

    @property
    def function_arn(self) -> str:
        if self.function_name.startswith("arn:"):
            return self.function_name
        name = self.function_name
        if self.target.qualifier:
            name = f"{name}:{self.target.qualifier}"
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    @property
    def invoke_identity_arn(self) -> str:
        return self.target.role_arn or f"arn:aws:iam::{self.account}:role/esm-poller"

    @property
    def source(self) -> str:
        """'kinesis', 'dynamodb', 'sqs', 'kafka' (MSK and self-managed), ..."""
        if self.kafka is not None:
            return "kafka"
        parts = self.event_source_arn.split(":", 5)
        return parts[2] if len(parts) > 2 else ""

    @property
    def fifo(self) -> bool:
        return self.source == "sqs" and self.event_source_arn.endswith(".fifo")

    @property
    def region(self) -> str:
        parts = self.event_source_arn.split(":", 5)
        if len(parts) > 3 and parts[3]:
            return parts[3]
        return self.kafka.region if self.kafka is not None else ""

    @property
    def account(self) -> str:
        parts = self.event_source_arn.split(":", 5)
        if len(parts) > 4 and parts[4]:
            return parts[4]
        return "000000000000" if self.kafka is not None else ""


@dataclass(frozen=True, slots=True)
class Config:
    mappings: tuple[Mapping, ...]
    aws: AwsConfig = field(default_factory=AwsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    # bootstrap servers of each Amazon MSK cluster ARN the mappings name
    msk_clusters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # endpoints of each Amazon MQ broker ARN the mappings name
    mq_brokers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
