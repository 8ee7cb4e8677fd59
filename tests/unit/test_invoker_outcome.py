"""Pure logic of invoke results, error classification, ARNs and S3 keys (no servers)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from poller.awsclients import destination_error, is_retryable
from poller.destinations import FailureContext
from poller.destinations.factory import make_destination
from poller.destinations.s3 import S3Destination, object_key
from poller.destinations.sns import SnsDestination
from poller.destinations.sqs import SqsDestination
from poller.invokers import InvokeResult, Outcome
from poller.invokers.local import function_name_from_arn, load_handler
from poller.loadgen import make_data, stream_name_from_arn


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (InvokeResult(status=200, payload=b"null"), Outcome.OK),
        (InvokeResult(status=202), Outcome.OK),
        (InvokeResult(status=200, function_error="Unhandled"), Outcome.FUNCTION_ERROR),
        (InvokeResult(status=200, function_error="Handled"), Outcome.FUNCTION_ERROR),
        (InvokeResult(status=429, error="TooManyRequestsException"), Outcome.THROTTLED),
        (InvokeResult(status=413, error="RequestEntityTooLargeException"), Outcome.TOO_LARGE),
        (InvokeResult(status=404, error="ResourceNotFoundException"), Outcome.ERROR),
        (InvokeResult(status=400, error="InvalidRequestContentException"), Outcome.ERROR),
        (InvokeResult(status=500, error="ServiceException"), Outcome.ERROR),
        (InvokeResult(status=502), Outcome.ERROR),
        (InvokeResult(status=0, error="connection refused"), Outcome.ERROR),
    ],
)
def test_outcome_from_status_and_function_error(result: InvokeResult, outcome: Outcome) -> None:
    assert result.outcome is outcome


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (_client_error("ThrottlingException", 400), True),
        (_client_error("Throttling", 400), True),
        (_client_error("RequestThrottled", 403), True),
        (_client_error("SlowDown", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("Whatever", 502), True),
        (_client_error("TooManyRequestsException", 429), True),
        (_client_error("AWS.SimpleQueueService.NonExistentQueue", 400), False),
        (_client_error("NotFound", 404), False),
        (_client_error("NoSuchBucket", 404), False),
        (_client_error("AccessDenied", 403), False),
        (_client_error("AuthorizationError", 403), False),
        (_client_error("InvalidParameter", 400), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (NoCredentialsError(), False),
        (ParamValidationError(report="bad"), False),
    ],
)
def test_retryable_classification(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable
    err = destination_error("SQS q", exc)
    assert err.retryable is retryable
    assert str(err).startswith("SQS q: ")


def test_destination_error_names_code_not_payload() -> None:
    err = destination_error("SNS t", _client_error("InvalidParameter", 400))
    assert str(err) == "SNS t: InvalidParameter: m"


def test_s3_object_key_layout() -> None:
    ts = datetime(2024, 3, 9, 7, 5, 1, 123000, tzinfo=UTC)
    key = object_key(FailureContext("uuid-1", "shardId-000000000001", ts))
    assert re.fullmatch(
        r"aws/lambda/uuid-1/shardId-000000000001/2024/03/09/2024-03-09T07\.05\.01-"
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", key), key
    assert key != object_key(FailureContext("uuid-1", "shardId-000000000001", ts))


def test_s3_object_key_uses_utc() -> None:
    ts = datetime(2024, 3, 9, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    key = object_key(FailureContext("u", "s", ts))
    assert key.startswith("aws/lambda/u/s/2024/03/08/2024-03-08T23.00.00-")


def test_make_destination_by_arn() -> None:
    clients = object()
    assert isinstance(make_destination("arn:aws:sqs:us-east-1:123456789012:q", clients),  # type: ignore[arg-type]
                      SqsDestination)
    assert isinstance(make_destination("arn:aws:sns:us-east-1:123456789012:t", clients),  # type: ignore[arg-type]
                      SnsDestination)
    s3 = make_destination("arn:aws:s3:::my-bucket", clients)  # type: ignore[arg-type]
    assert isinstance(s3, S3Destination) and s3.bucket == "my-bucket"
    for bad in ("arn:aws:kinesis:us-east-1:123456789012:stream/x", "my-queue", "arn:aws:sqs"):
        with pytest.raises(ValueError):
            make_destination(bad, clients)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("my-fn", "my-fn"),
        ("my-fn:live", "my-fn"),
        ("123456789012:function:my-fn", "my-fn"),
        ("arn:aws:lambda:us-east-1:123456789012:function:my-fn", "my-fn"),
        ("arn:aws:lambda:us-east-1:123456789012:function:my-fn:7", "my-fn"),
    ],
)
def test_function_name_from_arn(name: str, expected: str) -> None:
    assert function_name_from_arn(name) == expected


def test_load_handler_forms_and_errors() -> None:
    from tests.functions import echo

    assert load_handler("tests.functions.echo:handler") is echo.handler
    assert load_handler("tests.functions.echo.handler") is echo.handler
    with pytest.raises(ValueError, match=re.escape("tests.functions.nope:handler")):
        load_handler("tests.functions.nope:handler")
    with pytest.raises(ValueError, match="no attribute 'missing'"):
        load_handler("tests.functions.echo:missing")
    with pytest.raises(ValueError, match="not callable"):
        load_handler("tests.functions.echo:EVENTS")
    with pytest.raises(ValueError):
        load_handler("handler")


@pytest.mark.parametrize("size", [1, 5, 30, 31, 100, 1024, 4097])
def test_loadgen_data_has_exact_size(size: int) -> None:
    import json
    import random

    data = make_data(7, size, random.Random(1))
    assert len(data) == size
    if size >= 40:
        assert json.loads(data)["seq"] == 7


def test_stream_name_from_arn() -> None:
    assert stream_name_from_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/orders") == (
        "orders", "eu-west-1")
    assert stream_name_from_arn("orders") == ("orders", None)
    with pytest.raises(ValueError):
        stream_name_from_arn("arn:aws:sqs:eu-west-1:123456789012:q")
