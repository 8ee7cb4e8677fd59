"""Builds the invoker a mapping's target asks for."""

from __future__ import annotations

from poller.awsclients import AwsClients
from poller.config_model import Mapping
from poller.invokers import Invoker
from poller.invokers.http import HttpInvoker
from poller.invokers.lambda_ import LambdaInvoker
from poller.invokers.lambda_fast import FastLambdaInvoker
from poller.invokers.local import LocalInvoker


def make_invoker(mapping: Mapping, clients: AwsClients) -> Invoker:
    target = mapping.target
    if target.type == "lambda":
        parts = mapping.function_name.split(":")
        region = parts[3] if parts[0] == "arn" and len(parts) > 3 else None
        if target.client == "fast":
            return FastLambdaInvoker(clients.aws, mapping.function_name,
                                     qualifier=target.qualifier,
                                     timeout_seconds=target.timeout_seconds, region=region or None)
        return LambdaInvoker(clients, mapping.function_name, qualifier=target.qualifier,
                             timeout_seconds=target.timeout_seconds, region=region or None)
    if target.type == "http":
        if not target.url:
            raise ValueError(f"mapping {mapping.uuid}: http target needs a url")
        return HttpInvoker(target.url, headers=target.headers,
                           timeout_seconds=target.timeout_seconds)
    if target.type == "python":
        if not target.handler:
            raise ValueError(f"mapping {mapping.uuid}: python target needs a handler")
        return LocalInvoker(target.handler, function_arn=mapping.function_arn,
                            timeout_seconds=target.timeout_seconds)
    raise ValueError(f"mapping {mapping.uuid}: unknown target type {target.type!r}")
