"""The source-neutral record every stage after a reader works with.

A ``Record`` carries its ``position`` (total order within a shard or partition, an int),
``seq`` (the position as AWS prints it, used as ``itemIdentifier``), ``key`` (partition key:
records with one key keep their order), ``arrival`` (approximate arrival, epoch seconds),
``fragment`` (the record already rendered as its object in the event's ``Records`` array) and
``done`` (set when processed, filtered out or given up, so the checkpoint may pass it).

It is the Cython class from ``poller._fastbatch`` when that extension is built, else the
pure-Python twin from ``poller.batching``; both have the same attributes.
"""

from __future__ import annotations

from poller.batching import Record

__all__ = ["Record"]
