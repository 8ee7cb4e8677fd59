"""Benchmarks that print ratios against a baseline measured in the same run (docs/performance.md).

The tables are the output: the poller's own log lines go out at warning and above only."""

from poller.observability.logging import configure

configure("warning")
