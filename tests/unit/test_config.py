"""poller.config: YAML -> validated Config (pure logic, no servers)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from poller.config import (
    MISSING,
    TUNING_RANGES,
    ConfigError,
    ConfigIssue,
    generated_uuid,
    load_config,
    parse_config,
    summary,
)
from poller.config_model import Config, Mapping, Target, TuningConfig

ROOT = Path(__file__).resolve().parents[2]
STREAM = "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
QUEUE = "arn:aws:sqs:us-east-1:000000000000:orders-dlq"


def mapping(**fields: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "EventSourceArn": STREAM,
        "FunctionName": "orders-handler",
        "StartingPosition": "TRIM_HORIZON",
    }
    m.update(fields)
    return {k: v for k, v in m.items() if v is not DROP}


DROP = object()


def config(*mappings: dict[str, Any], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"mappings": list(mappings) or [mapping()]}
    data.update(top)
    return data


def parse(data: object, env: dict[str, str] | None = None) -> Config:
    return parse_config(data, "test.yaml", env={} if env is None else env)


def errors(data: object, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse(data, env)
    return info.value.errors


def issue(data: object, path: str, value: object = MISSING, *texts: str,
          env: dict[str, str] | None = None) -> ConfigIssue:
    """The one problem reported at ``path``; checks its value and that its text says ``texts``."""
    with pytest.raises(ConfigError) as info:
        parse(data, env)
    found = [e for e in info.value.errors if e.path == path]
    assert len(found) == 1, f"expected one problem at {path}, got: {info.value}"
    got = found[0]
    assert got.value == value and type(got.value) is type(value), got
    for text in texts:
        assert text in got.message, got
    rendered = str(info.value)
    assert path in rendered and got.message in rendered
    if value is not MISSING:
        shown = value.isoformat() if isinstance(value, dt.date) else repr(value)
        assert f"{path} = {shown}: " in rendered
    return got


def only_mapping(**fields: Any) -> Mapping:
    return parse(config(mapping(**fields))).mappings[0]


# --- valid files and defaults -------------------------------------------------------------------


def test_minimal_mapping_gets_aws_defaults() -> None:
    cfg = parse(config())
    m = cfg.mappings[0]
    assert m.event_source_arn == STREAM
    assert m.function_name == "orders-handler"
    assert m.starting_position == "TRIM_HORIZON"
    assert m.enabled is True
    assert m.batch_size == 100
    assert m.maximum_batching_window_in_seconds == 0
    assert m.maximum_record_age_in_seconds == -1
    assert m.maximum_retry_attempts == -1
    assert m.parallelization_factor == 1
    assert m.bisect_batch_on_function_error is False
    assert m.function_response_types == ()
    assert m.report_batch_item_failures is False
    assert m.on_failure_destination is None
    assert m.starting_position_timestamp is None
    assert m.target == Target()
    assert (m.kms_key_arn, m.tags, m.metrics_config) == (None, {}, ())
    assert (m.region, m.account, m.source) == ("us-east-1", "000000000000", "kinesis")
    assert cfg.aws.region == "us-east-1" and cfg.aws.endpoint_url is None
    assert cfg.aws.access_key_id is None
    assert (cfg.state.store, cfg.state.path) == ("sqlite", "./poller-state.db")
    assert (cfg.metrics.port, cfg.metrics.host) == (9464, "0.0.0.0")
    assert cfg.tuning == TuningConfig()
    assert (cfg.log_level, cfg.log_format) == ("info", "auto")


def test_example_file_loads_with_its_documented_values() -> None:
    cfg = load_config(ROOT / "examples" / "kinesis.yaml", env={})
    assert len(cfg.mappings) == 1
    m = cfg.mappings[0]
    assert m.uuid == "orders-to-fn"
    assert m.event_source_arn == STREAM
    assert m.function_name == "orders-handler"
    assert m.parallelization_factor == 2
    assert m.bisect_batch_on_function_error is True
    assert m.report_batch_item_failures is True
    assert m.on_failure_destination == QUEUE
    assert m.target.type == "lambda" and m.target.timeout_seconds == 60.0
    assert cfg.aws.endpoint_url == "http://127.0.0.1:4566"
    assert cfg.metrics.host == "127.0.0.1"


def test_example_file_takes_region_and_endpoint_from_environment() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9999"}
    cfg = load_config(str(ROOT / "examples" / "kinesis.yaml"), env=env)
    assert cfg.aws.region == "eu-west-1"
    assert cfg.aws.endpoint_url == "http://127.0.0.1:9999"


def test_all_fields_set() -> None:
    cfg = parse(config(
        mapping(UUID="m1", Enabled=False, BatchSize=10000, MaximumBatchingWindowInSeconds=300,
                MaximumRecordAgeInSeconds=604800, MaximumRetryAttempts=10000,
                ParallelizationFactor=10, BisectBatchOnFunctionError=True,
                FunctionResponseTypes=["ReportBatchItemFailures"],
                DestinationConfig={"OnFailure": {"Destination": QUEUE}},
                TumblingWindowInSeconds=0, FilterCriteria={"Filters": []},
                Target={"Type": "http", "Url": "http://127.0.0.1:8080/invoke",
                        "Headers": {"Authorization": "Bearer x"}, "TimeoutSeconds": 3600,
                        "RoleArn": "arn:aws:iam::000000000000:role/r"}),
        aws={"region": "eu-central-1", "endpoint_url": "http://127.0.0.1:4566",
             "access_key_id": "AKID", "secret_access_key": "SECRET", "session_token": "T",
             "lambda": {"endpoint_url": "http://127.0.0.1:9001", "region": "us-west-2"}},
        state={"store": "sqlite", "path": "/tmp/x.db"},
        metrics={"port": 0, "host": "127.0.0.1"},
        tuning={"retry_base_seconds": 0.01, "destination_attempts": 3},
        log={"level": "DEBUG", "format": "json"},
    ))
    m = cfg.mappings[0]
    assert (m.uuid, m.enabled, m.batch_size, m.maximum_batching_window_in_seconds) == (
        "m1", False, 10000, 300)
    assert (m.maximum_record_age_in_seconds, m.maximum_retry_attempts) == (604800, 10000)
    assert m.parallelization_factor == 10 and m.bisect_batch_on_function_error is True
    assert m.target.type == "http" and m.target.url == "http://127.0.0.1:8080/invoke"
    assert m.target.headers == {"Authorization": "Bearer x"}
    assert m.target.timeout_seconds == 3600.0
    assert m.invoke_identity_arn == "arn:aws:iam::000000000000:role/r"
    assert cfg.aws.endpoint_for("lambda") == "http://127.0.0.1:9001"
    assert cfg.aws.region_for("lambda") == "us-west-2"
    assert cfg.aws.endpoint_for("kinesis") == "http://127.0.0.1:4566"
    assert cfg.aws.region_for("kinesis") == "eu-central-1"
    assert (cfg.aws.access_key_id, cfg.aws.secret_access_key, cfg.aws.session_token) == (
        "AKID", "SECRET", "T")
    assert cfg.state.path == "/tmp/x.db" and cfg.metrics.port == 0
    assert cfg.tuning.retry_base_seconds == 0.01 and cfg.tuning.destination_attempts == 3
    assert cfg.tuning.retry_max_seconds == TuningConfig().retry_max_seconds
    assert (cfg.log_level, cfg.log_format) == ("debug", "json")


def test_batch_size_over_10_needs_no_batching_window_for_streams() -> None:
    m = only_mapping(BatchSize=500, MaximumBatchingWindowInSeconds=0)
    assert (m.batch_size, m.maximum_batching_window_in_seconds) == (500, 0)


def test_null_means_default() -> None:
    m = only_mapping(BatchSize=None, Enabled=None, DestinationConfig=None, Target=None)
    assert (m.batch_size, m.enabled, m.on_failure_destination, m.target) == (
        100, True, None, Target())


# --- ranges and types ---------------------------------------------------------------------------

RANGES = [
    ("BatchSize", "must be an integer from 1 to 10000", [0, 10001, -1], [1, 10000]),
    ("MaximumBatchingWindowInSeconds", "must be an integer from 0 to 300", [-1, 301], [0, 300]),
    ("MaximumRecordAgeInSeconds", "-1 (no limit) or an integer from 60 to 604800",
     [0, 59, -2, 604801], [-1, 60, 604800]),
    ("MaximumRetryAttempts", "from -1 to 10000", [-2, 10001], [-1, 0, 10000]),
    ("ParallelizationFactor", "must be an integer from 1 to 10", [0, 11], [1, 10]),
]


@pytest.mark.parametrize(("field", "text", "bad", "good"), RANGES)
def test_integer_ranges(field: str, text: str, bad: list[int], good: list[int]) -> None:
    for value in bad:
        issue(config(mapping(**{field: value})), f"mappings[0].{field}", value, text)
    for value in good:
        m = only_mapping(**{field: value})
        snake = {"BatchSize": "batch_size",
                 "MaximumBatchingWindowInSeconds": "maximum_batching_window_in_seconds",
                 "MaximumRecordAgeInSeconds": "maximum_record_age_in_seconds",
                 "MaximumRetryAttempts": "maximum_retry_attempts",
                 "ParallelizationFactor": "parallelization_factor"}[field]
        assert getattr(m, snake) == value


@pytest.mark.parametrize("value", ["100", True, 1.5, [100]])
def test_integer_field_rejects_other_types(value: object) -> None:
    got = issue(config(mapping(BatchSize=value)), "mappings[0].BatchSize", value,
                "must be an integer from 1 to 10000", "(got a ")
    if value is True:
        assert "boolean" in got.message


@pytest.mark.parametrize("field", ["Enabled", "BisectBatchOnFunctionError"])
@pytest.mark.parametrize("value", [1, 0, "true", "yes"])
def test_boolean_fields_take_yaml_booleans_only(field: str, value: object) -> None:
    issue(config(mapping(**{field: value})), f"mappings[0].{field}", value,
          "must be true or false")


def test_yaml_boolean_spellings_are_booleans() -> None:
    cfg = load_yaml_text("mappings:\n  - EventSourceArn: " + STREAM + "\n"
                         "    FunctionName: f\n    StartingPosition: LATEST\n"
                         "    Enabled: no\n    BisectBatchOnFunctionError: yes\n")
    m = cfg.mappings[0]
    assert m.enabled is False and m.bisect_batch_on_function_error is True


# --- FunctionName --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "f", "a" * 64, "orders-handler:prod", "orders_handler:$LATEST", "orders.v2",
    "arn:aws:lambda:us-east-1:000000000000:function:orders-handler",
    "arn:aws:lambda:us-east-1:000000000000:function:orders-handler:7",
])
def test_function_name_forms_accepted_unchanged(name: str) -> None:
    assert only_mapping(FunctionName=name).function_name == name


def test_partial_function_arn_resolves_in_the_source_region() -> None:
    m = only_mapping(FunctionName="123456789012:function:orders-handler:live")
    assert m.function_name == "arn:aws:lambda:us-east-1:123456789012:function:orders-handler:live"
    assert m.function_arn == m.function_name


@pytest.mark.parametrize("name", [
    "a" * 65, "", "bad name", "arn:aws:lambda:us-east-1:000000000000:function:" + "a" * 65,
    "arn:aws:lambda:us-east-1:000000000000:function:f:" + "q" * 220,
])
def test_function_name_rejected(name: str) -> None:
    got = issue(config(mapping(FunctionName=name)), "mappings[0].FunctionName", name)
    assert "64 characters" in got.message or "must not be empty" in got.message


def test_function_name_required_and_string() -> None:
    issue(config(mapping(FunctionName=DROP)), "mappings[0].FunctionName", MISSING, "is required")
    issue(config(mapping(FunctionName=123)), "mappings[0].FunctionName", 123, "(got an integer")


# --- EventSourceArn ------------------------------------------------------------------------------


@pytest.mark.parametrize(("arn", "kind"), [
    ("arn:aws:rds:us-east-1:000000000000:cluster:docs", "DocumentDB"),
    (STREAM + "/consumer/c1:1700000000", "enhanced fan-out"),
])
def test_other_event_sources_are_not_supported_yet(arn: str, kind: str) -> None:
    issue(config(mapping(EventSourceArn=arn)), "mappings[0].EventSourceArn", arn,
          kind, "not supported yet", "arn:aws:kinesis:<region>:<account>:stream/<name>")


@pytest.mark.parametrize("arn", [
    "orders", "arn:aws:kinesis:us-east-1:000000000000:orders",
    "arn:aws:kinesis:us-east-1::stream/orders", "arn:aws:kinesis::000000000000:stream/orders",
    "arn:aws:kinesis:us-east-1:0000:stream/orders",
    "arn:aws:kinesis:us-east-1:000000000000:stream/",
    "arn:aws:s3:::bucket",
])
def test_malformed_event_source_arn(arn: str) -> None:
    got = issue(config(mapping(EventSourceArn=arn)), "mappings[0].EventSourceArn", arn)
    assert "kinesis" in got.message.lower()


def test_event_source_arn_required() -> None:
    issue(config(mapping(EventSourceArn=DROP)), "mappings[0].EventSourceArn", MISSING,
          "is required")


def test_region_and_account_come_from_the_arn() -> None:
    m = only_mapping(EventSourceArn="arn:aws:kinesis:eu-west-3:123456789012:stream/s.1_x-y")
    assert (m.region, m.account) == ("eu-west-3", "123456789012")
    assert m.function_arn == "arn:aws:lambda:eu-west-3:123456789012:function:orders-handler"


# --- StartingPosition ----------------------------------------------------------------------------


def test_starting_position_required_for_kinesis() -> None:
    issue(config(mapping(StartingPosition=DROP)), "mappings[0].StartingPosition", MISSING,
          "is required for Kinesis", "TRIM_HORIZON, LATEST, AT_TIMESTAMP")


def test_starting_position_values_with_case_suggestion() -> None:
    issue(config(mapping(StartingPosition="latest")), "mappings[0].StartingPosition", "latest",
          "must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP", "(did you mean LATEST?)")


def test_at_timestamp_needs_a_timestamp() -> None:
    issue(config(mapping(StartingPosition="AT_TIMESTAMP")),
          "mappings[0].StartingPositionTimestamp", MISSING, "is required when StartingPosition "
          "is AT_TIMESTAMP")


def test_timestamp_only_with_at_timestamp() -> None:
    issue(config(mapping(StartingPosition="LATEST", StartingPositionTimestamp=1700000000)),
          "mappings[0].StartingPositionTimestamp", 1700000000,
          "only allowed with StartingPosition AT_TIMESTAMP")


@pytest.mark.parametrize(("value", "expected"), [
    (1700000000, 1700000000.0),
    (1700000000.5, 1700000000.5),
    ("2023-11-14T22:13:20Z", 1700000000.0),
    ("2023-11-14T23:13:20+01:00", 1700000000.0),
    ("2023-11-14T22:13:20", 1700000000.0),
    (dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC), 1700000000.0),
    (dt.date(2023, 11, 14), 1699920000.0),
])
def test_timestamp_forms(value: object, expected: float) -> None:
    m = only_mapping(StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=value)
    assert m.starting_position == "AT_TIMESTAMP"
    assert m.starting_position_timestamp == expected


def test_problems_in_file_order_with_readable_dates(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mappings:\n  - EventSourceArn: " + STREAM + "\n"
                    "    FunctionName: f\n    StartingPosition: AT_TIMESTAMP\n"
                    "    StartingPositionTimestamp: 2999-01-01\n    BatchSzie: 1\n"
                    "    Target: {Type: http}\n"
                    "metrics: {port: -1}\nlog: {level: loud}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).splitlines()[1:] == [
        "  mappings[0].StartingPositionTimestamp = 2999-01-01: must not be in the future "
        "(it is 2999-01-01T00:00:00Z)",
        "  mappings[0].BatchSzie: unknown field (did you mean BatchSize?)",
        "  mappings[0].Target.Url: is required: an http:// or https:// URL",
        "  metrics.port = -1: must be an integer from 0 to 65535 (0 disables the metrics "
        "endpoint)",
        "  log.level = 'loud': must be one of debug, info, warning, error",
    ]


def test_timestamp_from_unquoted_yaml_datetime() -> None:
    cfg = load_yaml_text("mappings:\n  - EventSourceArn: " + STREAM + "\n"
                         "    FunctionName: f\n    StartingPosition: AT_TIMESTAMP\n"
                         "    StartingPositionTimestamp: 2023-11-14T22:13:20Z\n")
    assert cfg.mappings[0].starting_position_timestamp == 1700000000.0


@pytest.mark.parametrize("future", [
    time.time() + 3600, "2999-01-01T00:00:00Z", dt.datetime(2999, 1, 1, tzinfo=dt.UTC)])
def test_timestamp_in_the_future_rejected(future: object) -> None:
    issue(config(mapping(StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=future)),
          "mappings[0].StartingPositionTimestamp", future, "must not be in the future")


@pytest.mark.parametrize("bad", ["yesterday", True, -5, [1]])
def test_timestamp_bad_values(bad: object) -> None:
    issue(config(mapping(StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=bad)),
          "mappings[0].StartingPositionTimestamp", bad,
          "epoch seconds (a number) or an ISO-8601 date-time")


# --- FunctionResponseTypes, DestinationConfig ---------------------------------------------------


def test_function_response_types() -> None:
    assert only_mapping(FunctionResponseTypes=[]).function_response_types == ()
    issue(config(mapping(FunctionResponseTypes=["ReportBatchItemFailures"] * 2)),
          "mappings[0].FunctionResponseTypes", ["ReportBatchItemFailures"] * 2, "at most 1 item")
    issue(config(mapping(FunctionResponseTypes=["reportbatchitemfailures"])),
          "mappings[0].FunctionResponseTypes[0]", "reportbatchitemfailures",
          "must be one of ReportBatchItemFailures", "did you mean ReportBatchItemFailures?")
    issue(config(mapping(FunctionResponseTypes="ReportBatchItemFailures")),
          "mappings[0].FunctionResponseTypes", "ReportBatchItemFailures", "must be a list")


@pytest.mark.parametrize("arn", [
    QUEUE, "arn:aws:sns:us-east-1:000000000000:alerts", "arn:aws:s3:::my-failed-records",
    "arn:aws-cn:sqs:cn-north-1:000000000000:q",
])
def test_on_failure_destinations_accepted(arn: str) -> None:
    m = only_mapping(DestinationConfig={"OnFailure": {"Destination": arn}})
    assert m.on_failure_destination == arn


@pytest.mark.parametrize("dc", [{}, {"OnFailure": {}}, {"OnFailure": {"Destination": ""}}])
def test_empty_destination_means_none(dc: dict[str, Any]) -> None:
    assert only_mapping(DestinationConfig=dc).on_failure_destination is None


@pytest.mark.parametrize(("arn", "text"), [
    (QUEUE + ".fifo", "FIFO queues are not supported"),
    ("arn:aws:lambda:us-east-1:000000000000:function:f", "SQS queue, SNS topic or S3 bucket"),
    ("arn:aws:s3:us-east-1:000000000000:bucket", "arn:aws:s3:::<bucket>"),
    ("kafka://topic", "only for Kafka event sources"),
    ("arn:aws:sqs:us-east-1:000000000000:" + "q" * 330, "at most 350 characters"),
])
def test_on_failure_destinations_rejected(arn: str, text: str) -> None:
    issue(config(mapping(DestinationConfig={"OnFailure": {"Destination": arn}})),
          "mappings[0].DestinationConfig.OnFailure.Destination", arn, text)


def test_on_success_rejected() -> None:
    issue(config(mapping(DestinationConfig={"OnSuccess": {"Destination": QUEUE}})),
          "mappings[0].DestinationConfig.OnSuccess", MISSING, "not supported for event source "
          "mappings")


# --- fields AWS has that esm-poller does not implement or that do not apply ---------------------


def test_filter_criteria_accepted() -> None:
    patterns = ['{"data": {"a": [1]}}', '{"partitionKey": [{"prefix": "eu-"}]}']
    m = only_mapping(FilterCriteria={"Filters": [{"Pattern": p} for p in patterns]})
    assert m.filter_patterns == tuple(patterns)
    assert only_mapping(FilterCriteria={"Filters": []}).filter_patterns == ()
    assert only_mapping(FilterCriteria=None).filter_patterns == ()
    assert "2 filter(s)" in summary(parse(config(mapping(
        FilterCriteria={"Filters": [{"Pattern": p} for p in patterns]}))))


def test_filter_criteria_problems_listed_per_filter() -> None:
    bad = {"Filters": [{"Pattern": '{"data": {"a": [1]}}'}, {"Pattern": '{"data": "x"}'},
                       {"Pattern": '{"a": [{"numeric": [">", 5, ">", 1]}]}'}, {"Pattern": "{"}]}
    errs = errors(config(mapping(FilterCriteria=bad, BatchSize=0)))
    paths = [e.path for e in errs]
    assert "mappings[0].BatchSize" in paths
    assert paths.count("mappings[0].FilterCriteria.Filters[1].Pattern") == 1
    text = "\n".join(str(e) for e in errs)
    assert "Filters[2].Pattern: a[0].numeric: at most one lower bound" in text
    assert "Filters[3].Pattern: Pattern is not valid JSON" in text


def test_filter_count_quota_follows_tuning() -> None:
    six = {"Filters": [{"Pattern": f'{{"partitionKey": ["{i}"]}}'} for i in range(6)]}
    issue(config(mapping(FilterCriteria=six)), "mappings[0].FilterCriteria.Filters", MISSING,
          "6 filters; at most 5", "tuning.max_filters_per_mapping")
    cfg = parse(config(mapping(FilterCriteria=six), tuning={"max_filters_per_mapping": 10}))
    assert len(cfg.mappings[0].filter_patterns) == 6
    eleven = {"Filters": six["Filters"] * 2}
    issue(config(mapping(FilterCriteria=eleven), tuning={"max_filters_per_mapping": 10}),
          "mappings[0].FilterCriteria.Filters", MISSING, "12 filters; at most 10")
    issue(config(tuning={"max_filters_per_mapping": 11}), "tuning.max_filters_per_mapping", 11)


def test_tumbling_window() -> None:
    assert only_mapping(TumblingWindowInSeconds=60).tumbling_window_in_seconds == 60
    assert only_mapping(TumblingWindowInSeconds=0).tumbling_window_in_seconds == 0
    issue(config(mapping(TumblingWindowInSeconds=901)), "mappings[0].TumblingWindowInSeconds",
          901, "from 0 (off) to 900")
    issue(config(mapping(TumblingWindowInSeconds=-1)), "mappings[0].TumblingWindowInSeconds",
          -1, "from 0 (off) to 900")
    issue(config(mapping(TumblingWindowInSeconds=30, ParallelizationFactor=2)),
          "mappings[0].ParallelizationFactor", 2, "must be 1 with TumblingWindowInSeconds")


@pytest.mark.parametrize("field", [
    "Queues", "Topics", "SourceAccessConfigurations", "SelfManagedEventSource", "ScalingConfig",
    "AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig", "ProvisionedPollerConfig", "LoggingConfig",
])
def test_fields_for_other_sources_rejected(field: str) -> None:
    issue(config(mapping(**{field: {}})), f"mappings[0].{field}", MISSING,
          "does not apply to Kinesis")


@pytest.mark.parametrize("field", ["State", "FunctionArn", "LastModified",
                                   "EventSourceMappingArn"])
def test_output_only_fields_rejected(field: str) -> None:
    issue(config(mapping(**{field: "x"})), f"mappings[0].{field}", MISSING,
          "output of GetEventSourceMapping")


def test_kms_tags_metrics_config_accepted_and_summarised() -> None:
    cfg = parse(config(mapping(KMSKeyArn="arn:aws:kms:us-east-1:000000000000:key/abc-123",
                               Tags={"team": "orders", "cost center": "a/b"},
                               MetricsConfig={"Metrics": ["EventCount"]})))
    m = cfg.mappings[0]
    assert m.kms_key_arn == "arn:aws:kms:us-east-1:000000000000:key/abc-123"
    assert m.tags == {"team": "orders", "cost center": "a/b"}
    assert m.metrics_config == ("EventCount",)
    text = summary(cfg)
    assert "Prometheus metrics are always exported" in text
    assert "KMSKeyArn accepted (no effect" in text


def test_kms_tags_metrics_config_validated() -> None:
    issue(config(mapping(KMSKeyArn="my-key")), "mappings[0].KMSKeyArn", "my-key", "KMS key ARN")
    issue(config(mapping(MetricsConfig={"Metrics": ["ErrorCount"]})),
          "mappings[0].MetricsConfig.Metrics[0]", "ErrorCount", "Kafka event sources only")
    issue(config(mapping(Tags={"aws:x": "1"})), "mappings[0].Tags.aws:x", MISSING, "reserved")
    issue(config(mapping(Tags={"t": 5})), "mappings[0].Tags.t", 5, "must be a string")
    issue(config(mapping(Tags={"t": "v" * 257})), "mappings[0].Tags.t", "v" * 257,
          "0 to 256 characters")


# --- unknown keys everywhere, with suggestions -------------------------------------------------


@pytest.mark.parametrize(("data", "path", "suggestion"), [
    (config(mapping(BatchSzie=5)), "mappings[0].BatchSzie", "BatchSize"),
    (config(mapping(batchSize=5)), "mappings[0].batchSize", "BatchSize"),
    (config(mapping(batch_size=5)), "mappings[0].batch_size", "BatchSize"),
    (config(mapping(Target={"Typ": "lambda"})), "mappings[0].Target.Typ", "Type"),
    (config(mapping(DestinationConfig={"onFailure": {}})),
     "mappings[0].DestinationConfig.onFailure", "OnFailure"),
    (config(mapping(DestinationConfig={"OnFailure": {"Destinaton": QUEUE}})),
     "mappings[0].DestinationConfig.OnFailure.Destinaton", "Destination"),
    (config(mapings=[]), "mapings", "mappings"),
    (config(aws={"regoin": "us-east-1"}), "aws.regoin", "region"),
    (config(aws={"kinesis": {"endpoint": "http://127.0.0.1:1"}}), "aws.kinesis.endpoint",
     "endpoint_url"),
    (config(state={"pth": "x"}), "state.pth", "path"),
    (config(metrics={"prot": 1}), "metrics.prot", "port"),
    (config(tuning={"retry_base_second": 1}), "tuning.retry_base_second", "retry_base_seconds"),
    (config(log={"lvl": "info"}), "log.lvl", "level"),
])
def test_unknown_fields_suggest_the_right_name(data: object, path: str, suggestion: str) -> None:
    issue(data, path, MISSING, "unknown", f"(did you mean {suggestion}?)")


def test_unknown_field_without_close_match() -> None:
    got = issue(config(mapping(Zzz=1)), "mappings[0].Zzz", MISSING, "unknown field")
    assert "did you mean" not in got.message


def test_mapping_field_at_top_level_is_explained() -> None:
    issue(config(BatchSize=10), "BatchSize", MISSING, "go inside an item of mappings")


def test_rendered_unknown_field_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse(config(mapping(BatchSzie=5)))
    assert str(info.value) == (
        "test.yaml: mappings[0].BatchSzie: unknown field (did you mean BatchSize?)")


# --- Target --------------------------------------------------------------------------------------


def test_targets() -> None:
    m = only_mapping(Target={"Type": "python", "Handler": "tests.functions.echo:handler"})
    assert (m.target.type, m.target.handler) == ("python", "tests.functions.echo:handler")
    m = only_mapping(Target={"Type": "lambda", "Qualifier": "live"})
    assert m.target.qualifier == "live"
    assert m.function_arn.endswith(":function:orders-handler:live")
    assert m.target.client == "fast"
    assert only_mapping(Target={"Client": "aiobotocore"}).target.client == "aiobotocore"


def test_target_problems() -> None:
    issue(config(mapping(Target={"Type": "http"})), "mappings[0].Target.Url", MISSING,
          "is required")
    issue(config(mapping(Target={"Type": "http", "Url": "ftp://x"})), "mappings[0].Target.Url",
          "ftp://x", "http:// or https:// URL")
    issue(config(mapping(Target={"Type": "python"})), "mappings[0].Target.Handler", MISSING,
          "is required", "package.module:function")
    issue(config(mapping(Target={"Type": "python", "Handler": "nocolon"})),
          "mappings[0].Target.Handler", "nocolon", "package.module:function")
    issue(config(mapping(Target={"Type": "grpc"})), "mappings[0].Target.Type", "grpc",
          "one of lambda, http, python")
    issue(config(mapping(Target={"Url": "http://127.0.0.1:1"})), "mappings[0].Target.Url",
          MISSING, "only applies to Type http")
    issue(config(mapping(Target={"TimeoutSeconds": 0})), "mappings[0].Target.TimeoutSeconds", 0,
          "greater than 0 and at most 3600")
    issue(config(mapping(Target={"RoleArn": "role"})), "mappings[0].Target.RoleArn", "role",
          "IAM role ARN")
    issue(config(mapping(FunctionName="f:live", Target={"Qualifier": "prod"})),
          "mappings[0].Target.Qualifier", "prod", "append :<version or alias> to FunctionName")
    issue(config(mapping(Target={"Client": "boto"})), "mappings[0].Target.Client", "boto",
          "one of fast, aiobotocore")
    issue(config(mapping(Target={"Type": "python", "Handler": "m:f", "Client": "fast"})),
          "mappings[0].Target.Client", MISSING, "only applies to Type lambda")


def test_header_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse(config(mapping(Target={"Type": "http", "Url": "http://127.0.0.1:1",
                                     "Headers": {"X-Token": 12345678}})))
    assert "12345678" not in str(info.value)
    assert "mappings[0].Target.Headers.X-Token" in str(info.value)


# --- duplicates ---------------------------------------------------------------------------------


def test_duplicate_uuid() -> None:
    data = config(mapping(UUID="a"), mapping(UUID="a", FunctionName="other"))
    issue(data, "mappings[1].UUID", "a", "duplicate UUID (also used by mappings[0])")


def test_same_source_and_function_conflict_like_aws() -> None:
    data = config(mapping(UUID="a"), mapping(UUID="b"))
    got = issue(data, "mappings[1]", MISSING)
    assert got.message.startswith(f'The event source arn (" {STREAM} ") and function '
                                  '(" orders-handler ") provided mapping already exists.')
    assert "existing mapping with UUID a" in got.message


def test_conflict_detected_across_name_forms() -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:orders-handler"
    issue(config(mapping(), mapping(FunctionName=arn)), "mappings[1]", MISSING,
          "provided mapping already exists")


def test_same_function_with_different_qualifier_is_no_conflict() -> None:
    cfg = parse(config(mapping(), mapping(FunctionName="orders-handler:live")))
    assert len(cfg.mappings) == 2


# --- generated UUIDs ----------------------------------------------------------------------------


def test_generated_uuid_is_stable() -> None:
    a = only_mapping().uuid
    assert a == only_mapping().uuid == generated_uuid(STREAM, "orders-handler")
    assert str(uuid.UUID(a)) == a
    # pinned: changing the derivation would silently orphan every stored checkpoint
    assert a == generated_uuid(STREAM, "orders-handler") == "9070e6be-8dfb-5fee-ab63-23bd33581d01"


def test_generated_uuid_differs_per_source_and_function() -> None:
    base = only_mapping().uuid
    assert only_mapping(EventSourceArn=STREAM + "2").uuid != base
    assert only_mapping(FunctionName="other").uuid != base


# --- environment references ----------------------------------------------------------------------


def test_env_expansion_and_defaults() -> None:
    data = config(mapping(FunctionName="${FN}", BatchSize="${BATCH:-250}",
                          Enabled="${ON:-true}",
                          Target={"Type": "http", "Url": "http://${HOST:-127.0.0.1}:${PORT}/x",
                                  "TimeoutSeconds": "${T-5}"}),
                  metrics={"port": "${METRICS_PORT:-0}"})
    cfg = parse(data, env={"FN": "orders-handler", "PORT": "8080", "ON": ""})
    m = cfg.mappings[0]
    assert m.function_name == "orders-handler"
    assert m.batch_size == 250 and m.enabled is True
    assert m.target.url == "http://127.0.0.1:8080/x"
    assert m.target.timeout_seconds == 5.0
    assert cfg.metrics.port == 0
    assert type(m.function_name) is str


def test_env_dash_default_applies_only_when_unset() -> None:
    issue(config(mapping(Target={"TimeoutSeconds": "${T-5}"})),
          "mappings[0].Target.TimeoutSeconds", "", "must be a number", env={"T": ""})


def test_env_unset_variable_is_an_error_naming_it_and_the_path() -> None:
    issue(config(mapping(FunctionName="${FUNCTION}")), "mappings[0].FunctionName", MISSING,
          "environment variable FUNCTION is not set")


def test_env_value_that_is_not_a_number() -> None:
    issue(config(mapping(BatchSize="${B}")), "mappings[0].BatchSize", "lots",
          "must be an integer from 1 to 10000", env={"B": "lots"})


def test_env_escape_and_plain_dollars() -> None:
    m = only_mapping(Target={"Type": "http", "Url": "http://127.0.0.1:1/$${X}/$a"})
    assert m.target.url == "http://127.0.0.1:1/${X}/$a"


def test_env_expansion_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESM_TEST_FN", "from-env")
    cfg = parse_config(config(mapping(FunctionName="${ESM_TEST_FN}")))
    assert cfg.mappings[0].function_name == "from-env"


def test_invalid_reference() -> None:
    issue(config(mapping(FunctionName="${1X}")), "mappings[0].FunctionName", MISSING,
          "invalid environment reference ${1X}")


# --- other sections -------------------------------------------------------------------------------


def test_state_store() -> None:
    issue(config(state={"store": "redis"}), "state.store", "redis",
          "must be one of sqlite, dynamodb")


def test_dynamodb_state_store_defaults_and_settings() -> None:
    cfg = parse(config(state={"store": "dynamodb"}))
    assert (cfg.state.store, cfg.state.table, cfg.state.billing_mode) == \
        ("dynamodb", "esm-poller-leases", "PAY_PER_REQUEST")
    assert (cfg.state.failover_seconds, cfg.state.handoff_grace_seconds,
            cfg.state.watchdog_seconds, cfg.state.endpoint_url) == (10.0, 10.0, 1200.0, None)
    cfg = parse(config(state={"store": "dynamodb", "table": "leases.prod",
                              "billing_mode": "PROVISIONED", "read_capacity": 5,
                              "write_capacity": 7, "failover_seconds": 3,
                              "handoff_grace_seconds": 0, "watchdog_seconds": 0,
                              "endpoint_url": "http://127.0.0.1:8000"}))
    s = cfg.state
    assert (s.table, s.billing_mode, s.read_capacity, s.write_capacity) == \
        ("leases.prod", "PROVISIONED", 5, 7)
    assert (s.failover_seconds, s.handoff_grace_seconds, s.watchdog_seconds) == (3.0, 0.0, 0.0)
    assert s.endpoint_url == "http://127.0.0.1:8000"
    assert "state: dynamodb table leases.prod (PROVISIONED, failover 3s);" in summary(cfg)


def test_dynamodb_state_store_reports_every_bad_field_with_its_range() -> None:
    found = {e.path: e for e in errors(config(state={
        "store": "dynamodb", "table": "x", "billing_mode": "ON_DEMAND",
        "failover_seconds": 0.5, "handoff_grace_seconds": 1000, "watchdog_seconds": -1,
        "endpoint_url": "localhost:8000", "read_capacity": 5}))}
    assert set(found) == {"state.table", "state.billing_mode", "state.failover_seconds",
                          "state.handoff_grace_seconds", "state.watchdog_seconds",
                          "state.endpoint_url", "state.read_capacity"}
    assert "3 to 255" in found["state.table"].message
    assert "PAY_PER_REQUEST, PROVISIONED" in found["state.billing_mode"].message
    assert "from 1 to 600" in found["state.failover_seconds"].message
    assert "from 0 to 900" in found["state.handoff_grace_seconds"].message
    assert "from 0 to 86400" in found["state.watchdog_seconds"].message
    assert "PROVISIONED" in found["state.read_capacity"].message


def test_dynamodb_settings_need_the_dynamodb_store() -> None:
    issue(config(state={"table": "leases"}), "state.table", "leases",
          "only with state.store: dynamodb")
    assert parse(config(state={"watchdog_seconds": 60})).state.watchdog_seconds == 60.0


def test_tumbling_windows_are_refused_with_the_dynamodb_store() -> None:
    issue(config(mapping(TumblingWindowInSeconds=60), state={"store": "dynamodb"}),
          "mappings[0].TumblingWindowInSeconds", 60, "not supported with state.store: dynamodb")
    assert parse(config(mapping(TumblingWindowInSeconds=60))).mappings[0] \
        .tumbling_window_in_seconds == 60


@pytest.mark.parametrize("port", [-1, 65536, "80", True])
def test_metrics_port(port: object) -> None:
    issue(config(metrics={"port": port}), "metrics.port", port, "from 0 to 65535")


def test_log_section() -> None:
    issue(config(log={"level": "verbose"}), "log.level", "verbose",
          "one of debug, info, warning, error")
    issue(config(log={"format": "text"}), "log.format", "text", "one of auto, json, console")


def test_every_tuning_field_has_a_range() -> None:
    names = {f.name for f in dataclasses.fields(TuningConfig)}
    assert set(TUNING_RANGES) == names
    defaults = TuningConfig()
    for name, (lo, hi) in TUNING_RANGES.items():
        assert lo <= getattr(defaults, name) <= hi, name


@pytest.mark.parametrize(("field", "value", "text"), [
    ("idle_poll_seconds", 0, "must be a number from 0.01 to 60"),
    ("shard_discovery_seconds", -1, "from 1 to 3600"),
    ("destination_attempts", 0, "must be an integer from 1 to 100"),
    ("destination_attempts", 2.5, "must be an integer from 1 to 100"),
    ("drain_grace_seconds", "10", "must be a number from 0 to 3600"),
    ("checkpoint_flush_seconds", float("inf"), "from 0 to 60"),
])
def test_tuning_ranges(field: str, value: object, text: str) -> None:
    issue(config(tuning={field: value}), f"tuning.{field}", value, text)


def test_tuning_max_below_base() -> None:
    issue(config(tuning={"retry_base_seconds": 5, "retry_max_seconds": 1}),
          "tuning.retry_max_seconds", 1.0, "must be at least tuning.retry_base_seconds (5)")


def test_aws_section() -> None:
    issue(config(aws={"region": "mars"}), "aws.region", "mars", "AWS region name")
    issue(config(aws={"endpoint_url": "localhost:4566"}), "aws.endpoint_url", "localhost:4566",
          "http:// or https://")
    issue(config(aws={"access_key_id": "AKID"}), "aws.secret_access_key", MISSING,
          "is required when aws.access_key_id is set")
    issue(config(aws={"lambda": "http://x"}), "aws.lambda", "http://x", "must be a mapping")


def test_secret_not_echoed() -> None:
    got = issue(config(aws={"access_key_id": "A", "secret_access_key": 987654321}),
                "aws.secret_access_key", "***", "must be a string")
    assert "987654321" not in got.message


@pytest.mark.parametrize(("data", "path", "text"), [
    ({"mappings": []}, "mappings", "at least one mapping"),
    ({"aws": {}}, "mappings", "is required"),
    ({"mappings": {"a": 1}}, "mappings", "must be a list"),
    ({"mappings": ["x"]}, "mappings[0]", "must be a mapping"),
])
def test_mappings_list(data: dict[str, Any], path: str, text: str) -> None:
    got = [e for e in errors(data) if e.path == path]
    assert len(got) == 1 and text in got[0].message


# --- several problems at once; file-level errors -----------------------------------------------


def test_all_problems_reported_in_one_error() -> None:
    bad = config(
        mapping(BatchSize=20000, ParallelizationFactor=0, StartingPosition="OLDEST"),
        mapping(FunctionName="x" * 70, BisectBatchOnFunctionError="yes"),
        metrics={"port": 70000},
    )
    with pytest.raises(ConfigError) as info:
        parse(bad)
    err = info.value
    paths = [e.path for e in err.errors]
    assert paths == [  # in file order
        "mappings[0].StartingPosition", "mappings[0].BatchSize",
        "mappings[0].ParallelizationFactor", "mappings[1].FunctionName",
        "mappings[1].BisectBatchOnFunctionError", "metrics.port",
    ]
    text = str(err)
    lines = text.splitlines()
    assert lines[0] == "test.yaml: 6 problems:"
    assert "  mappings[0].BatchSize = 20000: must be an integer from 1 to 10000" in lines
    assert "  metrics.port = 70000: must be an integer from 0 to 65535 (0 disables the metrics " \
           "endpoint)" in lines
    assert len(lines) == 7


def load_yaml_text(text: str) -> Config:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(text)
        return load_config(path, env={})


def test_yaml_syntax_error_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mappings:\n  - FunctionName: f\n    BatchSize: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: invalid YAML at line ")


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("mappings:\n  - FunctionName: f\n    BatchSize: 1\n    BatchSize: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (f"{path}: invalid YAML at line 4, column 5: "
                               "found duplicate key 'BatchSize'")


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "mappings:\n"
        "  - &first {EventSourceArn: " + STREAM + ", FunctionName: a, StartingPosition: LATEST,"
        " BatchSize: 7}\n"
        "  - <<: *first\n    FunctionName: b\n")
    cfg = load_config(path, env={})
    assert [(m.function_name, m.batch_size) for m in cfg.mappings] == [("a", 7), ("b", 7)]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: file not found"


def test_empty_file_and_wrong_top_level(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(path, env={})
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"expected a mapping .* \(got a list\)"):
        load_config(path, env={})


def test_parse_does_not_modify_its_input() -> None:
    data = config(mapping(FunctionName="${FN}"))
    before = copy.deepcopy(data)
    parse(data, env={"FN": "f"})
    assert data == before


# --- summary --------------------------------------------------------------------------------------


def test_summary_has_one_line_per_mapping() -> None:
    cfg = parse(config(
        mapping(UUID="m1", DestinationConfig={"OnFailure": {"Destination": QUEUE}},
                ParallelizationFactor=3),
        mapping(UUID="m2", FunctionName="other", Enabled=False,
                Target={"Type": "http", "Url": "http://127.0.0.1:9/x",
                        "Headers": {"Authorization": "secret-token"}}),
    ))
    text = summary(cfg)
    lines = text.splitlines()
    m1 = [ln for ln in lines if "m1" in ln]
    m2 = [ln for ln in lines if "m2" in ln]
    assert len(m1) == 1 and len(m2) == 1
    assert STREAM in m1[0] and "orders-handler" in m1[0] and "via lambda" in m1[0]
    assert "ParallelizationFactor 3" in m1[0] and QUEUE in m1[0] and "BatchSize 100" in m1[0]
    assert "DISABLED" in m2[0] and "via http http://127.0.0.1:9/x" in m2[0]
    assert "secret-token" not in text
    assert "2 mappings (1 enabled)" in lines[0]


def test_summary_lists_changed_tuning_only() -> None:
    text = summary(parse(config(tuning={"retry_base_seconds": 0.05})))
    assert "tuning: retry_base_seconds 0.05" in text
    assert "tuning:" not in summary(parse(config()))


def test_recursive_data() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse({"mappings": loop})


def test_recursive_yaml_alias(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("mappings: &x [*x]\n")
    with pytest.raises(ConfigError, match="invalid YAML at line 1"):
        load_config(path, env={})


# --- DynamoDB Streams and SQS ---------------------------------------------------------------------

DDB_STREAM = "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2024-01-01T00:00:00.000"
SQS_QUEUE = "arn:aws:sqs:us-east-1:000000000000:jobs"
FIFO_QUEUE = "arn:aws:sqs:us-east-1:000000000000:jobs.fifo"


def sqs_mapping(**fields: Any) -> dict[str, Any]:
    return mapping(**{"EventSourceArn": SQS_QUEUE, "StartingPosition": DROP, **fields})


def test_dynamodb_stream_mapping_defaults() -> None:
    m = parse(config(mapping(EventSourceArn=DDB_STREAM, StartingPosition="LATEST"))).mappings[0]
    assert (m.source, m.batch_size, m.starting_position) == ("dynamodb", 100, "LATEST")
    assert m.maximum_retry_attempts == -1 and m.maximum_concurrency is None


def test_dynamodb_streams_have_no_at_timestamp() -> None:
    issue(config(mapping(EventSourceArn=DDB_STREAM, StartingPosition="AT_TIMESTAMP",
                         StartingPositionTimestamp=1)),
          "mappings[0].StartingPosition", "AT_TIMESTAMP", "one of TRIM_HORIZON, LATEST")


@pytest.mark.parametrize("arn", [
    "arn:aws:dynamodb:us-east-1:000000000000:table/orders",
    "arn:aws:dynamodb:us-east-1::table/orders/stream/x",
    "arn:aws:sqs:us-east-1:000000000000:bad/name",
    "arn:aws:sqs::000000000000:jobs",
])
def test_malformed_dynamodb_and_sqs_arns(arn: str) -> None:
    issue(config(mapping(EventSourceArn=arn)), "mappings[0].EventSourceArn", arn, "must be a")


def test_sqs_mapping_defaults() -> None:
    m = parse(config(sqs_mapping())).mappings[0]
    assert (m.source, m.batch_size, m.starting_position, m.fifo) == ("sqs", 10, None, False)
    assert m.maximum_concurrency is None


def test_sqs_rejects_stream_only_fields_all_at_once() -> None:
    fields = {"StartingPosition": "LATEST", "MaximumRetryAttempts": 1,
              "BisectBatchOnFunctionError": True, "ParallelizationFactor": 2,
              "MaximumRecordAgeInSeconds": 60, "TumblingWindowInSeconds": 5,
              "DestinationConfig": {"OnFailure": {"Destination": QUEUE}}}
    got = errors(config(mapping(EventSourceArn=SQS_QUEUE, **fields)))
    assert sorted(e.path for e in got) == sorted(f"mappings[0].{k}" for k in fields)
    assert all("does not apply to SQS" in e.message for e in got)


def test_stream_sources_reject_scaling_config() -> None:
    issue(config(mapping(EventSourceArn=DDB_STREAM, ScalingConfig={"MaximumConcurrency": 5})),
          "mappings[0].ScalingConfig", MISSING, "does not apply to DynamoDB Streams")


def test_sqs_batch_size_over_10_needs_a_window() -> None:
    issue(config(sqs_mapping(BatchSize=100)), "mappings[0].BatchSize", 100,
          "MaximumBatchingWindowInSeconds of at least 1")
    m = parse(config(sqs_mapping(BatchSize=10000, MaximumBatchingWindowInSeconds=1))).mappings[0]
    assert m.batch_size == 10000
    issue(config(sqs_mapping(BatchSize=10001, MaximumBatchingWindowInSeconds=1)),
          "mappings[0].BatchSize", 10001, "from 1 to 10000")


def test_fifo_queue_limits() -> None:
    fifo = parse(config(sqs_mapping(EventSourceArn=FIFO_QUEUE))).mappings[0]
    assert fifo.fifo and fifo.batch_size == 10
    issue(config(sqs_mapping(EventSourceArn=FIFO_QUEUE, BatchSize=11,
                             MaximumBatchingWindowInSeconds=0)),
          "mappings[0].BatchSize", 11, "from 1 to 10 for a FIFO queue")
    issue(config(sqs_mapping(EventSourceArn=FIFO_QUEUE, MaximumBatchingWindowInSeconds=5)),
          "mappings[0].MaximumBatchingWindowInSeconds", 5, "not supported for FIFO")


@pytest.mark.parametrize(("value", "ok"), [(2, True), (1000, True), (1, False), (1001, False)])
def test_sqs_maximum_concurrency_range(value: int, ok: bool) -> None:
    data = config(sqs_mapping(ScalingConfig={"MaximumConcurrency": value}))
    if ok:
        assert parse(data).mappings[0].maximum_concurrency == value
    else:
        issue(data, "mappings[0].ScalingConfig.MaximumConcurrency", value, "from 2 to 1000")
    assert parse(config(sqs_mapping(ScalingConfig={}))).mappings[0].maximum_concurrency is None


def test_summary_shows_queue_settings_for_sqs() -> None:
    text = summary(parse(config(sqs_mapping(ScalingConfig={"MaximumConcurrency": 7}))))
    line = text.splitlines()[-1]
    assert "standard queue" in line and "MaximumConcurrency 7" in line and "BatchSize 10" in line
    assert "ParallelizationFactor" not in line and "on failure" not in line


def test_dynamodb_sqs_example_file_loads() -> None:
    cfg = load_config(ROOT / "examples" / "dynamodb-sqs.yaml", env={})
    ddb, jobs, payments = cfg.mappings
    assert (ddb.source, ddb.starting_position, ddb.on_failure_destination) == (
        "dynamodb", "TRIM_HORIZON", "arn:aws:sqs:us-east-1:000000000000:orders-changes-failed")
    assert (jobs.source, jobs.batch_size, jobs.maximum_concurrency) == ("sqs", 100, 20)
    assert payments.fifo and payments.batch_size == 10


def test_sqs_filter_criteria_take_body_as_object_or_rules() -> None:
    patterns = ['{"body": {"kind": ["order"]}}', '{"body": [{"prefix": "ping"}]}',
                '{"attributes": {"MessageGroupId": ["g"]}}']
    m = parse(config(sqs_mapping(FilterCriteria={"Filters": [{"Pattern": p}
                                                             for p in patterns]}))).mappings[0]
    assert m.filter_patterns == tuple(patterns)
