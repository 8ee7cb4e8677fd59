"""Each target type, configured from YAML as a user writes it: lambda (function host over the
Invoke API), http (plain POST) and python (in-process handler)."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest
import yaml

from poller.config import parse_config
from poller.functionhost import FunctionHost
from poller.service import Service
from tests.functions import echo
from tests.helpers import create_stream, put_records, unique_name, wait_for


@pytest.mark.parametrize("target", ["lambda", "http", "python"])
async def test_target_receives_the_kinesis_event(kinesalite_endpoint: str, tmp_path: Path,
                                                 target: str) -> None:
    stream = unique_name(f"target-{target}")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    put_records(kinesalite_endpoint, stream, [("k", f"{target}-{i}") for i in range(12)])
    echo.reset()
    host = FunctionHost(echo.handler)
    await host.start()
    try:
        target_yaml = {
            "lambda": "{Type: lambda}",
            "http": f"{{Type: http, Url: '{host.endpoint}/2015-03-31/functions/f/invocations'}}",
            "python": "{Type: python, Handler: 'tests.functions.echo:handler'}",
        }[target]
        text = textwrap.dedent(f"""\
            aws:
              region: us-east-1
              kinesis: {{endpoint_url: '{kinesalite_endpoint}'}}
              lambda: {{endpoint_url: '{host.endpoint}'}}
            state: {{path: '{tmp_path / "state.db"}'}}
            metrics: {{port: 0}}
            tuning: {{idle_poll_seconds: 0.1, shard_discovery_seconds: 1}}
            mappings:
              - EventSourceArn: {arn}
                FunctionName: echo
                StartingPosition: TRIM_HORIZON
                BatchSize: 5
                Target: {target_yaml}
            """)
        service = Service(parse_config(yaml.safe_load(text)))
        await service.start()
        try:
            await wait_for(lambda: sum(len(e["Records"]) for e in echo.EVENTS) >= 12, 30)
        finally:
            await service.stop()
    finally:
        await host.stop()
    data = [base64.b64decode(r["kinesis"]["data"]).decode()
            for e in echo.EVENTS for r in e["Records"]]
    assert data == [f"{target}-{i}" for i in range(12)]
    assert [len(e["Records"]) for e in echo.EVENTS] == [5, 5, 2]
    assert host.invocations == (0 if target == "python" else 3)
