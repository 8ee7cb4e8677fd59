"""Builds the on-failure destination for a destination ARN (SQS queue, SNS topic, S3 bucket)."""

from __future__ import annotations

from poller.awsclients import AwsClients
from poller.destinations import Destination
from poller.destinations.s3 import S3Destination
from poller.destinations.sns import SnsDestination
from poller.destinations.sqs import SqsDestination


def make_destination(arn: str, clients: AwsClients) -> Destination:
    parts = arn.split(":", 5)
    service = parts[2] if len(parts) == 6 and parts[0] == "arn" else ""
    if service == "sqs":
        return SqsDestination(arn, clients)
    if service == "sns":
        return SnsDestination(arn, clients)
    if service == "s3":
        return S3Destination(arn, clients)
    raise ValueError(f"unsupported on-failure destination {arn!r}: expected an SQS queue, "
                     "SNS topic or S3 bucket ARN")
