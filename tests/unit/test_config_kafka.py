"""Kafka mappings (Amazon MSK and self-managed) in the config: AWS's names, defaults, ranges."""

from __future__ import annotations

from typing import Any

import pytest

from poller.config import MISSING, summary
from poller.config_model import Mapping
from tests.unit.test_config import DROP, QUEUE, config, errors, issue, parse

CLUSTER = ("arn:aws:kafka:eu-west-1:111122223333:cluster/sales/"
           "abcd1234-abcd-cafe-abab-9876543210ab-4")
MSK = {"clusters": {CLUSTER: "b-1.example:9092,b-2.example:9092"}}


def self_managed(**fields: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["127.0.0.1:9092"]}},
        "Topics": ["orders"],
        "FunctionName": "orders-handler",
        "StartingPosition": "TRIM_HORIZON",
    }
    m.update(fields)
    return {k: v for k, v in m.items() if v is not DROP}


def msk(**fields: Any) -> dict[str, Any]:
    m = self_managed(SelfManagedEventSource=DROP, EventSourceArn=CLUSTER)
    m.update(fields)
    return {k: v for k, v in m.items() if v is not DROP}


def only(m: dict[str, Any], **top: Any) -> Mapping:
    [mapping] = parse(config(m, **top)).mappings
    return mapping


def test_self_managed_defaults() -> None:
    m = only(self_managed())
    assert m.kafka is not None
    assert (m.kafka.topic, m.kafka.bootstrap_servers, m.kafka.managed) == (
        "orders", ("127.0.0.1:9092",), False)
    assert m.kafka.consumer_group_id == m.uuid  # AWS: the mapping's UUID
    assert m.event_source_arn == "" and m.source == "kafka"
    assert m.maximum_batching_window_in_seconds == 0.5  # Kafka's default: 500 ms
    assert (m.batch_size, m.maximum_retry_attempts, m.parallelization_factor) == (100, -1, 1)
    assert m.function_arn == "arn:aws:lambda:us-east-1:000000000000:function:orders-handler"
    assert "self-managed Kafka 127.0.0.1:9092 topic orders" in summary(parse(config(
        self_managed())))


def test_msk_by_cluster_arn_with_bootstrap_servers_from_config() -> None:
    m = only(msk(AmazonManagedKafkaEventSourceConfig={"ConsumerGroupId": "my-group"}), msk=MSK)
    assert m.kafka is not None and m.kafka.managed
    assert m.kafka.bootstrap == "b-1.example:9092,b-2.example:9092"
    assert m.kafka.consumer_group_id == "my-group"
    assert m.event_source_arn == CLUSTER and m.region == "eu-west-1"
    issue(config(msk()), "mappings[0].EventSourceArn", CLUSTER, "msk.clusters")


def test_key_parallelism_is_a_kafka_target_extension() -> None:
    m = only(self_managed(Target={"Type": "python", "Handler": "m:f", "KeyParallelism": 4}))
    assert m.target.key_parallelism == 4 and m.parallelization_factor == 1
    assert "KeyParallelism 4" in summary(parse(config(self_managed(
        Target={"KeyParallelism": 4}))))
    issue(config(self_managed(Target={"KeyParallelism": 11})),
          "mappings[0].Target.KeyParallelism", 11, "from 1 to 10")
    issue(config({"EventSourceArn": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
                  "FunctionName": "f", "StartingPosition": "LATEST",
                  "Target": {"KeyParallelism": 2}}),
          "mappings[0].Target.KeyParallelism", 2, "ParallelizationFactor")


def test_window_and_infinite_retry_cap_with_destination() -> None:
    m = only(self_managed(MaximumBatchingWindowInSeconds=0,
                          DestinationConfig={"OnFailure": {"Destination": QUEUE}}))
    assert m.maximum_batching_window_in_seconds == 0
    assert m.maximum_retry_attempts == 10  # -1 with a destination: Lambda caps at 10
    assert only(self_managed(MaximumRetryAttempts=3)).maximum_retry_attempts == 3


def test_topics_exactly_one_valid_name() -> None:
    issue(config(self_managed(Topics=DROP)), "mappings[0].Topics", MISSING, "exactly 1")
    issue(config(self_managed(Topics=["a", "b"])), "mappings[0].Topics", ["a", "b"],
          "exactly 1")
    issue(config(self_managed(Topics=[".x"])), "mappings[0].Topics[0]", ".x", "topic name")


@pytest.mark.parametrize(("field", "value"), [
    ("ParallelizationFactor", 2), ("TumblingWindowInSeconds", 60), ("Queues", ["q"]),
])
def test_fields_that_do_not_apply_to_kafka(field: str, value: object) -> None:
    issue(config(self_managed(**{field: value})), f"mappings[0].{field}", MISSING,
          "does not apply to Kafka")


def test_every_bad_kafka_field_in_one_error() -> None:
    found = {e.path for e in errors(config(self_managed(
        SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["nohost"]}},
        BatchSize=10001, StartingPosition="SOMEWHERE",
        SelfManagedKafkaEventSourceConfig={"ConsumerGroupId": "bad#group"},
        SourceAccessConfigurations=[{"Type": "SASL_SCRAM_512_AUTH", "URI": "arn:x"}],
        DestinationConfig={"OnFailure": {"Destination": "kafka://.x"}},
        ProvisionedPollerConfig={"MinimumPollers": 5, "MaximumPollers": 2}),
        self_managed(EventSourceArn=CLUSTER)))}
    assert found == {
        "mappings[0].SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS[0]",
        "mappings[0].BatchSize", "mappings[0].StartingPosition",
        "mappings[0].SelfManagedKafkaEventSourceConfig.ConsumerGroupId",
        "mappings[0].SourceAccessConfigurations[0].URI",
        "mappings[0].DestinationConfig.OnFailure.Destination",
        "mappings[0].ProvisionedPollerConfig.MaximumPollers",
        "mappings[1].EventSourceArn",
    }


def test_vpc_access_and_provisioned_and_logging_config_accepted() -> None:
    m = only(self_managed(
        SourceAccessConfigurations=[{"Type": "VPC_SUBNET", "URI": "subnet:subnet-1"}],
        ProvisionedPollerConfig={"MinimumPollers": 1, "MaximumPollers": 3},
        LoggingConfig={"SystemLogLevel": "WARN"},
        MetricsConfig={"Metrics": ["EventCount", "KafkaMetrics"]}))
    assert m.kafka is not None and m.kafka.access == (("VPC_SUBNET", "subnet:subnet-1"),)
    assert m.metrics_config == ("EventCount", "KafkaMetrics")


def test_at_timestamp_allowed() -> None:
    m = only(self_managed(StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=1.7e9))
    assert m.starting_position == "AT_TIMESTAMP" and m.starting_position_timestamp == 1.7e9


def test_wrong_kind_of_kafka_config_and_msk_cluster_map() -> None:
    issue(config(self_managed(AmazonManagedKafkaEventSourceConfig={"ConsumerGroupId": "g"})),
          "mappings[0].AmazonManagedKafkaEventSourceConfig", MISSING,
          "use SelfManagedKafkaEventSourceConfig")
    issue(config(self_managed(), msk={"clusters": {"arn:aws:sqs:x": "a:1"}}),
          "msk.clusters.arn:aws:sqs:x", MISSING, "MSK cluster ARNs")


SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:kafka"


def test_auth_needs_its_secret_source_and_one_client_auth() -> None:
    secrets = {SECRET: {"file": "/run/secrets/kafka.json"}}
    issue(config(self_managed(SourceAccessConfigurations=[
        {"Type": "SASL_SCRAM_512_AUTH", "URI": "kafka-user"}])),
        "mappings[0].SourceAccessConfigurations[0].URI", "kafka-user",
        "Secrets Manager secret ARN", "secrets")
    m = only(self_managed(SourceAccessConfigurations=[
        {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET}]))
    assert m.kafka is not None and m.kafka.auth[0].secret.kind == "secretsmanager"
    issue(config(msk(SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": SECRET}]),
                 msk=MSK, secrets=secrets),
          "mappings[0].SourceAccessConfigurations[0].Type", "BASIC_AUTH", "self-managed")
    issue(config(self_managed(SourceAccessConfigurations=[
        {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET},
        {"Type": "CLIENT_CERTIFICATE_TLS_AUTH", "URI": SECRET}]), secrets=secrets),
        "mappings[0].SourceAccessConfigurations", MISSING, "at most one")
    issue(config(self_managed(), secrets={SECRET: {"file": "a", "env": "B"}}),
          f"secrets.{SECRET}", MISSING, "exactly one")
    m = only(msk(SourceAccessConfigurations=[
        {"Type": "CLIENT_CERTIFICATE_TLS_AUTH", "URI": SECRET}]), msk=MSK, secrets=secrets)
    assert m.kafka is not None
    assert [(a.type, a.secret.kind, a.secret.name) for a in m.kafka.auth] == [
        ("CLIENT_CERTIFICATE_TLS_AUTH", "file", "/run/secrets/kafka.json")]


def test_kafka_topic_on_failure_destination() -> None:
    m = only(self_managed(DestinationConfig={"OnFailure": {"Destination": "kafka://orders-dlt"}}))
    assert m.on_failure_destination == "kafka://orders-dlt"
    assert m.maximum_retry_attempts == 10
    issue(config(self_managed(DestinationConfig={"OnFailure": {"Destination": "kafka://orders"}})),
          "mappings[0].DestinationConfig.OnFailure.Destination", "kafka://orders", "recursion")
    issue(config(self_managed(DestinationConfig={"OnFailure": {"Destination": "kafka://.x"}})),
          "mappings[0].DestinationConfig.OnFailure.Destination", "kafka://.x", "topic name")


@pytest.mark.parametrize("make", [self_managed, msk])
def test_kafka_filter_criteria_accepted(make: Any) -> None:
    patterns = ['{"value": {"kind": ["order"]}}', '{"key": ["a"], "partition": [0]}']
    m = only(make(FilterCriteria={"Filters": [{"Pattern": p} for p in patterns]}), msk=MSK)
    assert m.filter_patterns == tuple(patterns)
