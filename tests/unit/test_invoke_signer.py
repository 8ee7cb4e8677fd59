"""The fast Lambda invoker's SigV4 signer against botocore's SigV4Auth: the same headers and
the same signature for the same instant, URL, payload and credentials."""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from poller.sigv4 import PostSigner as InvokeSigner

NOW = datetime.datetime(2026, 3, 14, 15, 9, 26, tzinfo=datetime.UTC)


def botocore_headers(url: str, region: str, payload: bytes,
                     credentials: ReadOnlyCredentials, monkeypatch: pytest.MonkeyPatch,
                     now: datetime.datetime = NOW) -> dict[str, str]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=url, data=payload,
                         headers={"X-Amz-Invocation-Type": "RequestResponse"})
    SigV4Auth(credentials, "lambda", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9001/2015-03-31/functions/orders/invocations",
    "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/arn%3Aaws%3Alambda%3A"
    "eu-west-1%3A123456789012%3Afunction%3Aorders%3Alive/invocations",
    "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/orders/invocations"
    "?Qualifier=%24LATEST",
])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////token+with/slash="])
@pytest.mark.parametrize("payload", [b"", b'{"Records":[{"kinesis":{"data":"aGk="}}]}'])
def test_signature_matches_botocore(url: str, token: str | None, payload: bytes,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    region = "eu-west-1" if "eu-west-1" in url else "us-east-1"
    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                      token)
    signer = InvokeSigner(url, region)
    assert signer.sign(payload, credentials, NOW) == botocore_headers(
        url, region, payload, credentials, monkeypatch)


def test_signing_key_follows_the_day_and_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:9001/2015-03-31/functions/orders/invocations"
    signer = InvokeSigner(url, "us-east-1")
    first = ReadOnlyCredentials("AKID", "secret-1", None)
    rotated = ReadOnlyCredentials("AKID", "secret-2", None)
    tomorrow = NOW + datetime.timedelta(days=1)
    for credentials, now in ((first, NOW), (first, tomorrow), (rotated, tomorrow)):
        assert signer.sign(b"{}", credentials, now) == botocore_headers(
            url, "us-east-1", b"{}", credentials, monkeypatch, now)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////token"])
@pytest.mark.parametrize(("service", "prefix", "version"), [
    ("kinesis", "Kinesis_20131202", "1.1"), ("dynamodb", "DynamoDBStreams_20120810", "1.0")])
def test_json_protocol_headers_match_botocore(service: str, prefix: str, version: str,
                                              token: str | None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """AwsJsonClient's GetRecords requests: Content-Type and X-Amz-Target signed as botocore."""
    url = "http://127.0.0.1:4567/"
    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "secret", token)
    body = b'{"ShardIterator":"AAA=","Limit":10000}'
    fixed = {"Content-Type": f"application/x-amz-json-{version}"}
    target = {"X-Amz-Target": f"{prefix}.GetRecords"}
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=url, data=body, headers={**fixed, **target})
    SigV4Auth(credentials, service, "eu-west-1").add_auth(request)
    signer = InvokeSigner(url, "eu-west-1", service, fixed)
    assert signer.sign(body, credentials, NOW, headers=target) == dict(request.headers.items())
