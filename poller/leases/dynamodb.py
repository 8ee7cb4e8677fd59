"""The shared lease store: a DynamoDB table in Amazon KCL's lease schema, for many replicas.

One item per (mapping, shard); ``leaseKey`` is ``<mapping UUID>:<shard id>`` so one table serves
every mapping. Every write that depends on ownership (renew, take, checkpoint, release) is a
conditional write on ``leaseCounter`` (and ``leaseOwner``): a replica that lost a lease can never
move its checkpoint. Expiry is KCL's: a lease whose counter has not moved for the failover time
(measured on the observer's own clock) is free to take.

Attributes: leaseKey, leaseOwner, leaseCounter, checkpoint, checkpointSubSequenceNumber,
ownerSwitchesSinceCheckpoint, parentShardId (SS), childShardIds (SS), plus ``mapping``,
``shardId`` and ``handoffTo`` (a replica below its share asking the owner to hand the lease
over gracefully).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from poller.awsjson import AwsError, AwsJsonClient
from poller.config_model import AwsConfig, ServiceEndpoint, StateConfig
from poller.observability import metrics

log = structlog.get_logger(__name__)

CONDITION_FAILED = "ConditionalCheckFailedException"


class LeaseLost(Exception):
    """A conditional write found the lease owned by someone else (or its counter moved)."""


@dataclass
class Lease:
    mapping: str
    shard: str
    owner: str | None
    counter: int
    checkpoint: str
    parents: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    owner_switches: int = 0
    handoff_to: str | None = None

    @property
    def key(self) -> str:
        return lease_key(self.mapping, self.shard)


def worker_id() -> str:
    """This replica's lease owner name: host, pid and a random part (a restart is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_key(mapping: str, shard: str) -> str:
    return f"{mapping}:{shard}"


def _from_item(item: dict[str, Any]) -> Lease:
    def s(name: str) -> str | None:
        v = item.get(name)
        return str(v["S"]) if v and "S" in v else None

    def ss(name: str) -> tuple[str, ...]:
        v = item.get(name)
        return tuple(sorted(v["SS"])) if v and "SS" in v else ()

    key = s("leaseKey") or ""
    mapping = s("mapping") or key.rsplit(":", 1)[0]
    shard = s("shardId") or key.rsplit(":", 1)[-1]
    return Lease(mapping=mapping, shard=shard, owner=s("leaseOwner"),
                 counter=int(item.get("leaseCounter", {}).get("N", "0")),
                 checkpoint=s("checkpoint") or "TRIM_HORIZON",
                 parents=ss("parentShardId"), children=ss("childShardIds"),
                 owner_switches=int(item.get("ownerSwitchesSinceCheckpoint", {}).get("N", "0")),
                 handoff_to=s("handoffTo"))


@dataclass
class Held:
    """A lease this replica holds: the counter its next conditional write must see."""

    lease: Lease
    renewed_at: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DynamoDBLeaseStore:
    """Lease table access for one replica (``owner``). Also a CheckpointStore: checkpoints of
    held leases are fenced writes; a checkpoint for a lease not (or no longer) held is refused
    and counted (``esm_checkpoints_refused``)."""

    def __init__(self, aws: AwsConfig, state: StateConfig, owner: str | None = None) -> None:
        if state.endpoint_url:
            services = {**aws.services, "dynamodb": ServiceEndpoint(
                endpoint_url=state.endpoint_url, region=aws.region_for("dynamodb"))}
            aws = dataclasses.replace(aws, services=services)
        self._aws = aws
        self._client: AwsJsonClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self.table = state.table
        self.owner = owner or worker_id()
        self._billing_mode = state.billing_mode
        self._capacity = (state.read_capacity, state.write_capacity)
        self.held: dict[str, Held] = {}  # leaseKey -> held lease
        self.on_lost: list[Any] = []  # callbacks (mapping, shard, reason)

    async def _call(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._client is not None, "open() first"
        return await self._client.call(op, {"TableName": self.table, **params})

    # --- table ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the table when missing and wait until it is ACTIVE."""
        self._session = aiohttp.ClientSession()
        self._client = AwsJsonClient(service="dynamodb", signing_name="dynamodb",
                                     target_prefix="DynamoDB_20120810", json_version="1.0",
                                     aws=self._aws, session=self._session, timeout_seconds=10.0)
        try:
            desc = await self._call("DescribeTable", {})
        except AwsError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            params: dict[str, Any] = {
                "AttributeDefinitions": [{"AttributeName": "leaseKey", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                "BillingMode": self._billing_mode,
            }
            if self._billing_mode == "PROVISIONED":
                params["ProvisionedThroughput"] = {"ReadCapacityUnits": self._capacity[0],
                                                   "WriteCapacityUnits": self._capacity[1]}
            try:
                await self._call("CreateTable", params)
                log.info("lease_table_created", table=self.table, billing_mode=self._billing_mode)
            except AwsError as create_exc:
                if create_exc.code != "ResourceInUseException":  # another replica was first
                    raise
            desc = await self._call("DescribeTable", {})
        deadline = time.monotonic() + 60.0
        while desc.get("Table", {}).get("TableStatus") != "ACTIVE":
            if time.monotonic() > deadline:
                raise AwsError("TableNotActive", f"lease table {self.table} is not ACTIVE", 0)
            await asyncio.sleep(0.5)
            desc = await self._call("DescribeTable", {})

    async def close(self) -> None:
        self.held.clear()
        if self._client is not None:
            self._client.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- reads ---------------------------------------------------------------------------------

    async def list_leases(self, mapping: str) -> list[Lease]:
        """Every lease of ``mapping`` (a consistent Scan filtered on the key prefix)."""
        leases: list[Lease] = []
        params: dict[str, Any] = {
            "ConsistentRead": True,
            "FilterExpression": "begins_with(leaseKey, :p)",
            "ExpressionAttributeValues": {":p": {"S": f"{mapping}:"}},
        }
        while True:
            resp = await self._call("Scan", params)
            leases.extend(_from_item(i) for i in resp.get("Items") or [])
            last = resp.get("LastEvaluatedKey")
            if not last:
                return leases
            params["ExclusiveStartKey"] = last

    async def load(self, mapping: str) -> dict[str, str]:
        return {lease.shard: lease.checkpoint for lease in await self.list_leases(mapping)}

    async def load_windows(self, mapping: str) -> dict[str, str]:
        return {}  # config rejects TumblingWindowInSeconds with this store

    # --- conditional writes --------------------------------------------------------------------

    async def _update(self, key: str, update: str, condition: str,
                      values: dict[str, Any], names: dict[str, str] | None = None) -> Lease:
        params: dict[str, Any] = {
            "Key": {"leaseKey": {"S": key}}, "UpdateExpression": update,
            "ConditionExpression": condition, "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            params["ExpressionAttributeNames"] = names
        try:
            resp = await self._call("UpdateItem", params)
        except AwsError as exc:
            if exc.code == CONDITION_FAILED:
                raise LeaseLost(key) from exc
            raise
        return _from_item(resp.get("Attributes") or {})

    async def create(self, mapping: str, shard: str, checkpoint: str,
                     parents: Sequence[str] = ()) -> bool:
        """Create the lease, unowned, unless it exists. True if this call created it."""
        item: dict[str, Any] = {
            "leaseKey": {"S": lease_key(mapping, shard)}, "mapping": {"S": mapping},
            "shardId": {"S": shard}, "leaseCounter": {"N": "0"},
            "checkpoint": {"S": checkpoint}, "checkpointSubSequenceNumber": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
        }
        if parents:
            item["parentShardId"] = {"SS": sorted(set(parents))}
        try:
            await self._call("PutItem", {"Item": item,
                                         "ConditionExpression": "attribute_not_exists(leaseKey)"})
        except AwsError as exc:
            if exc.code == CONDITION_FAILED:
                return False
            raise
        return True

    async def take(self, lease: Lease) -> Lease:
        """Become the owner of ``lease`` as last seen (its counter must not have moved since)."""
        switches = 0 if lease.owner in (None, self.owner) else 1
        new = await self._update(
            lease.key,
            "SET leaseOwner = :me, leaseCounter = leaseCounter + :one, "
            "ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :sw REMOVE handoffTo",
            "leaseCounter = :c",
            {":me": {"S": self.owner}, ":one": {"N": "1"}, ":sw": {"N": str(switches)},
             ":c": {"N": str(lease.counter)}})
        self.held[new.key] = Held(new)
        return new

    async def request_handoff(self, lease: Lease) -> bool:
        """Ask the owner (still ``lease.owner``) to hand the lease over; the counter is not
        touched, so the owner keeps renewing until it has checkpointed and released."""
        try:
            await self._update(lease.key, "SET handoffTo = :me", "leaseOwner = :o",
                               {":me": {"S": self.owner}, ":o": {"S": lease.owner or ""}})
        except LeaseLost:
            return False
        return True

    async def _fenced(self, key: str, update: str, values: dict[str, Any]) -> Lease:
        """A write to a held lease, conditional on its owner and counter; bumps the counter."""
        held = self.held.get(key)
        if held is None:
            raise LeaseLost(key)
        async with held.lock:
            if self.held.get(key) is not held:
                raise LeaseLost(key)
            new = await self._update(
                key, f"SET leaseCounter = leaseCounter + :one{update}",
                "leaseOwner = :me AND leaseCounter = :c",
                {":one": {"N": "1"}, ":me": {"S": self.owner},
                 ":c": {"N": str(held.lease.counter)}, **values})
            held.lease = new
            held.renewed_at = time.monotonic()
            return new

    async def renew(self, key: str) -> Lease:
        return await self._fenced(key, "", {})

    async def checkpoint(self, mapping: str, shard: str, checkpoint: str,
                         children: Sequence[str] = ()) -> Lease:
        update = (", checkpoint = :cp, checkpointSubSequenceNumber = :zero, "
                  "ownerSwitchesSinceCheckpoint = :zero")
        values: dict[str, Any] = {":cp": {"S": checkpoint}, ":zero": {"N": "0"}}
        if children:
            update += ", childShardIds = :kids"
            values[":kids"] = {"SS": sorted(set(children))}
        return await self._fenced(lease_key(mapping, shard), update, values)

    async def release(self, mapping: str, shard: str) -> None:
        """Give the lease up (after its final checkpoint): owner cleared, counter bumped."""
        key = lease_key(mapping, shard)
        held = self.held.get(key)
        if held is None:
            return
        async with held.lock:
            try:
                await self._update(
                    key, "SET leaseCounter = leaseCounter + :one REMOVE leaseOwner, handoffTo",
                    "leaseOwner = :me AND leaseCounter = :c",
                    {":one": {"N": "1"}, ":me": {"S": self.owner},
                     ":c": {"N": str(held.lease.counter)}})
            finally:
                self.held.pop(key, None)

    # --- CheckpointStore -----------------------------------------------------------------------

    async def save(self, items: list[tuple[str, str, str]],
                   windows: list[tuple[str, str, str | None]] | None = None) -> None:
        """Fenced checkpoint writes, concurrently. A refused one is counted and dropped (the
        lease is gone: the next owner resumes from the last checkpoint it can see)."""
        async def one(mapping: str, shard: str, cp: str) -> None:
            try:
                await self.checkpoint(mapping, shard, cp)
            except LeaseLost:
                metrics.checkpoints_refused.labels(mapping).inc()
                log.warning("checkpoint_refused", mapping=mapping, shard=shard,
                            reason="lease not held")
                self.lost(mapping, shard, "checkpoint_refused")

        results = await asyncio.gather(*(one(*i) for i in items), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def lost(self, mapping: str, shard: str, reason: str) -> None:
        """Forget a lost lease (counted once) and tell the listeners (stop reading it)."""
        key = lease_key(mapping, shard)
        if self.held.pop(key, None) is not None:
            metrics.leases_lost.labels(mapping, reason).inc()
        for callback in self.on_lost:
            callback(mapping, shard, reason)
