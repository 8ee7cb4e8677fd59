"""The DynamoDB lease table on DynamoDB Local: fencing, expiry, balance across replicas,
graceful hand-off; and the stuck-shard watchdog (sqlite store) on kinesalite."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from poller.config_model import Config, Mapping, StateConfig
from poller.leases import TRIM_HORIZON
from poller.leases.dynamodb import DynamoDBLeaseStore, LeaseLost, lease_key
from poller.service import Service
from poller.sources.shards import ShardCoordinator
from tests.helpers import create_stream, make_boto3_client, put_records, unique_name, wait_for
from tests.infra.servers import start as start_server
from tests.integration.pipeline_harness import (
    FAST,
    Recorder,
    config_for,
    counter,
    function_host,
    mapping_for,
    metrics,
    running,
)
from tests.integration.source_harness import EventRecorder, source_config, source_mapping
from tests.integration.source_harness import function_host as function_host_for_events

FAILOVER = 2.0


def lease_state(endpoint: str, table: str, **kw: Any) -> StateConfig:
    base: dict[str, Any] = dict(store="dynamodb", table=table, endpoint_url=endpoint,
                                failover_seconds=FAILOVER, handoff_grace_seconds=5.0)
    base.update(kw)
    return StateConfig(**base)


@contextlib.asynccontextmanager
async def opened(store: DynamoDBLeaseStore) -> AsyncIterator[DynamoDBLeaseStore]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def lease_config(mapping: Mapping, kinesis: str, lambda_endpoint: str, dynamodb: str,
                 table: str) -> Config:
    return dataclasses.replace(config_for(mapping, kinesis, lambda_endpoint, Path("unused.db")),
                               state=lease_state(dynamodb, table))


def table_items(endpoint: str, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = make_boto3_client("dynamodb", endpoint).scan(
        TableName=table, ConsistentRead=True)["Items"]
    return items


async def test_table_is_created_with_the_kcl_schema_and_billing_mode(
        dynamodb_local_endpoint: str) -> None:
    table = unique_name("leases")
    config = Config(mappings=(), state=lease_state(dynamodb_local_endpoint, table,
                                                   billing_mode="PROVISIONED", read_capacity=3,
                                                   write_capacity=4))
    async with opened(DynamoDBLeaseStore(config.aws, config.state, "w1")) as store:
        assert await store.create("m1", "shardId-000000000001", TRIM_HORIZON, ["shardId-0"])
        assert not await store.create("m1", "shardId-000000000001", "123")  # exists: untouched
    desc = make_boto3_client("dynamodb", dynamodb_local_endpoint).describe_table(
        TableName=table)["Table"]
    assert desc["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
    assert desc["ProvisionedThroughput"]["WriteCapacityUnits"] == 4
    (item,) = table_items(dynamodb_local_endpoint, table)
    assert item["leaseKey"] == {"S": "m1:shardId-000000000001"}
    assert item["leaseCounter"] == {"N": "0"}
    assert item["checkpoint"] == {"S": TRIM_HORIZON}
    assert item["checkpointSubSequenceNumber"] == {"N": "0"}
    assert item["ownerSwitchesSinceCheckpoint"] == {"N": "0"}
    assert item["parentShardId"] == {"SS": ["shardId-0"]}
    assert "leaseOwner" not in item


async def test_a_stale_owner_can_never_write_a_checkpoint(dynamodb_local_endpoint: str) -> None:
    table = unique_name("fence")
    state = lease_state(dynamodb_local_endpoint, table)
    config = Config(mappings=(), state=state)
    mapping = unique_name("m")
    lost: list[tuple[str, str, str]] = []
    async with opened(DynamoDBLeaseStore(config.aws, state, "old")) as old, \
            opened(DynamoDBLeaseStore(config.aws, state, "new")) as new:
        old.on_lost.append(lambda *a: lost.append(a))
        await old.create(mapping, "s1", TRIM_HORIZON)
        (lease,) = await old.list_leases(mapping)
        await old.take(lease)
        await old.save([(mapping, "s1", "100")])  # fenced, accepted
        (seen,) = await new.list_leases(mapping)
        assert (seen.owner, seen.checkpoint) == ("old", "100")
        taken = await new.take(seen)  # as after the old owner's counter stood still
        assert taken.owner == "new" and taken.owner_switches == 1
        refused = counter(metrics.checkpoints_refused, mapping)
        lost_before = counter(metrics.leases_lost, mapping, reason="checkpoint_refused")
        await old.save([(mapping, "s1", "200")])  # the stale owner's checkpoint
        assert counter(metrics.checkpoints_refused, mapping) == refused + 1
        assert counter(metrics.leases_lost, mapping, reason="checkpoint_refused") == \
            lost_before + 1
        assert lost == [(mapping, "s1", "checkpoint_refused")]
        assert lease_key(mapping, "s1") not in old.held
        with pytest.raises(LeaseLost):
            await old.renew(lease_key(mapping, "s1"))
        await new.save([(mapping, "s1", "150")])
        (final,) = await new.list_leases(mapping)
        assert (final.owner, final.checkpoint, final.owner_switches) == ("new", "150", 0)
        # renew and release are fenced too: a release clears the owner and bumps the counter
        await new.renew(lease_key(mapping, "s1"))
        await new.release(mapping, "s1")
        (released,) = await new.list_leases(mapping)
        assert released.owner is None and released.counter == final.counter + 2


def two_shard_setup(kinesalite: str, n: int) -> tuple[str, str, list[tuple[str, str]]]:
    stream = unique_name("lease")
    arn = create_stream(kinesalite, stream, shards=2)
    sent = put_records(kinesalite, stream, [(f"k{i % 11}", f"r{i}") for i in range(n)])
    return stream, arn, sent


def held(service: Service) -> set[str]:
    assert service.lease_store is not None
    return {k.split(":", 1)[1] for k in service.lease_store.held}


def replica(config: Config) -> Config:
    return dataclasses.replace(config)


async def test_an_expired_lease_is_taken_and_read_after_its_checkpoint(
        kinesalite_endpoint: str, dynamodb_local_endpoint: str) -> None:
    _stream, arn, sent = two_shard_setup(kinesalite_endpoint, 40)
    table = unique_name("expired")
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=5)
        config = lease_config(mapping, kinesalite_endpoint, host.endpoint,
                              dynamodb_local_endpoint, table)
        shards = sorted({s for s, _ in sent})
        first = {s: next(q for sh, q in sent if sh == s) for s in shards}
        # a replica that died holding both leases, each checkpointed after its first record
        async with opened(DynamoDBLeaseStore(config.aws, config.state, "dead")) as ghost:
            for shard in shards:
                await ghost.create(mapping.uuid, shard, TRIM_HORIZON)
            for lease in await ghost.list_leases(mapping.uuid):
                await ghost.take(lease)
            await ghost.save([(mapping.uuid, s, first[s]) for s in shards])
            taken = counter(metrics.leases_taken, mapping.uuid)
            started = time.monotonic()
            async with running(config) as service:
                await wait_for(lambda: held(service) == set(shards), 6 * FAILOVER,
                               message="expired leases not taken")
                took = time.monotonic() - started
                await wait_for(lambda: len(rec.ok) >= 38, 30, message="records missing")
    assert took >= FAILOVER * 0.9, "a lease was taken before it expired"
    assert counter(metrics.leases_taken, mapping.uuid) == taken + 2
    expected = sorted(q for s, q in sent if q != first[s])
    assert sorted(s.seq for s in rec.seen) == expected  # exactly after the dead checkpoint


async def test_two_replicas_balance_and_hand_off_exactly_after_the_checkpoint(
        kinesalite_endpoint: str, dynamodb_local_endpoint: str) -> None:
    stream = unique_name("balance")
    arn = create_stream(kinesalite_endpoint, stream, shards=4)
    table = unique_name("balance")
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=10)
        config = lease_config(mapping, kinesalite_endpoint, host.endpoint,
                              dynamodb_local_endpoint, table)
        sent: list[tuple[str, str]] = []

        async def produce(start: int, n: int) -> None:
            sent.extend(await asyncio.to_thread(
                put_records, kinesalite_endpoint, stream,
                [(f"k{i % 13}", f"r{i}") for i in range(start, start + n)]))

        released = counter(metrics.leases_released, mapping.uuid)
        async with running(config) as a:
            await wait_for(lambda: len(held(a)) == 4, 30, message="a did not take all leases")
            await produce(0, 200)
            await wait_for(lambda: len(rec.ok) >= 200, 30, message="a did not process")
            async with running(replica(config)) as b:
                await wait_for(lambda: len(held(a)) == 2 and len(held(b)) == 2, 10 * FAILOVER,
                               message="replicas did not balance")
                assert held(a).isdisjoint(held(b))
                assert counter(metrics.leases_released, mapping.uuid) >= released + 2
                await produce(200, 200)
                await wait_for(lambda: len(rec.ok) >= 400, 30, message="records missing")
            # b stopped (SIGTERM path): it released its leases after its last checkpoint
            await wait_for(lambda: len(held(a)) == 4, 10 * FAILOVER,
                           message="a did not take b's released leases")
            await produce(400, 100)
            await wait_for(lambda: len(rec.ok) >= 500, 30, message="records missing")
    counts = Counter(s.seq for s in rec.seen)
    assert sorted(counts) == sorted(q for _s, q in sent)
    assert max(counts.values()) == 1, "a graceful hand-off re-delivered records"
    for shard in {s for s, _ in sent}:  # in shard order across owners
        assert [s.seq for s in rec.seen if s.shard == shard] == [q for s, q in sent if s == shard]
    assert counter(metrics.leases_stolen, mapping.uuid) == 0
    assert counter(metrics.lease_balance_seconds, mapping.uuid) > 0  # _sum of observed times


async def test_watchdog_restarts_a_stuck_shard_reader(
        kinesalite_endpoint: str, tmp_path: Path) -> None:
    stream = unique_name("stuck")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    put_records(kinesalite_endpoint, stream, [(f"k{i}", f"r{i}") for i in range(5)])
    hang = asyncio.Event()
    calls: list[int] = []

    def behave(event: dict[str, Any], batch: Any) -> None:
        calls.append(len(batch))
        if len(calls) == 1:  # the first invocation hangs (a stuck connection, say)
            while not hang.is_set() and len(calls) == 1:
                time.sleep(0.05)

    rec = Recorder(behave=behave)
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=10)
        config = dataclasses.replace(
            config_for(mapping, kinesalite_endpoint, host.endpoint, tmp_path / "w.db",
                       tuning=dataclasses.replace(FAST, drain_grace_seconds=0.2)),
            state=StateConfig(path=str(tmp_path / "w.db"), watchdog_seconds=1.0))
        restarts = counter(metrics.watchdog_restarts, mapping.uuid)
        async with running(config) as service:
            runner = service.mappings[mapping.uuid]
            assert isinstance(runner, ShardCoordinator)
            await wait_for(lambda: len(rec.ok) >= 5, 30, message="stuck shard never restarted")
            hang.set()
    assert counter(metrics.watchdog_restarts, mapping.uuid) >= restarts + 1
    # the hung batch was abandoned and read again from the checkpoint by the new reader
    assert len(calls) >= 2
    assert {s.data for s in rec.ok} == {f"r{i}".encode() for i in range(5)}


async def test_children_wait_for_the_parents_shard_end_across_replicas(
        kinesalite_endpoint: str, dynamodb_local_endpoint: str) -> None:
    stream = unique_name("reshard")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    before = put_records(kinesalite_endpoint, stream, [(f"k{i % 10}", f"p{i}") for i in range(60)])
    kinesis = make_boto3_client("kinesis", kinesalite_endpoint)
    (parent,) = {s for s, _ in before}
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2 ** 127))
    await wait_for(lambda: kinesis.describe_stream_summary(StreamName=stream)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 30)
    after = put_records(kinesalite_endpoint, stream, [(f"k{i % 10}", f"c{i}") for i in range(60)])
    children = {s for s, _ in after}
    assert len(children) == 2 and parent not in children
    rec = Recorder(delay=0.05)  # the parent takes a while: both replicas see its children
    table = unique_name("reshard")
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=5)
        config = lease_config(mapping, kinesalite_endpoint, host.endpoint,
                              dynamodb_local_endpoint, table)
        async with running(config) as a, running(replica(config)) as b:
            await wait_for(lambda: len(rec.ok) >= 120, 60, message="records missing")
            await wait_for(lambda: len(held(a)) == 1 and len(held(b)) == 1, 10 * FAILOVER,
                           message="the children's leases did not spread, one per replica")
    items = {i["shardId"]["S"]: i for i in table_items(dynamodb_local_endpoint, table)}
    assert items[parent]["checkpoint"] == {"S": "SHARD_END"}
    assert "leaseOwner" not in items[parent]  # released once ended
    assert {tuple(items[c]["parentShardId"]["SS"]) for c in children} == {(parent,)}
    order = [s.shard for s in rec.seen]
    assert len(rec.seen) == 120, "a record was delivered twice"
    last_parent = max(i for i, s in enumerate(order) if s == parent)
    first_child = min(i for i, s in enumerate(order) if s in children)
    assert last_parent < first_child, "a child shard was read before its parent ended"


async def test_a_replica_that_loses_its_lease_stops_and_takes_it_back_once_expired(
        kinesalite_endpoint: str, dynamodb_local_endpoint: str) -> None:
    stream = unique_name("lost")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    first = put_records(kinesalite_endpoint, stream, [(f"k{i}", f"a{i}") for i in range(10)])
    (shard,) = {s for s, _ in first}
    table = unique_name("lost")
    rec = Recorder()
    async with function_host(rec) as host:
        mapping = mapping_for(arn, batch_size=5)
        config = lease_config(mapping, kinesalite_endpoint, host.endpoint,
                              dynamodb_local_endpoint, table)
        lost = counter(metrics.leases_lost, mapping.uuid)
        taken = counter(metrics.leases_taken, mapping.uuid)
        async with running(config) as a, \
                opened(DynamoDBLeaseStore(config.aws, config.state, "thief")) as thief:
            runner = a.mappings[mapping.uuid]
            assert isinstance(runner, ShardCoordinator)
            await wait_for(lambda: len(rec.ok) >= 10 and runner.readers and
                           runner.readers[shard][1].position() == first[-1][1], 30,
                           message="first records not processed")

            async def steal() -> bool:
                (lease,) = await thief.list_leases(mapping.uuid)
                try:  # races with a's renewals: the counter must not have moved since the scan
                    await thief.take(lease)
                except LeaseLost:
                    return False
                await thief.save([(mapping.uuid, shard, first[-1][1])])
                return True

            for _attempt in range(50):
                if await steal():
                    break
            else:
                pytest.fail("could not take the lease from a")
            await wait_for(lambda: not held(a) and shard not in runner.readers, 3 * FAILOVER,
                           message="a kept reading a shard it lost")
            assert counter(metrics.leases_lost, mapping.uuid) == lost + 1
            more = await asyncio.to_thread(
                put_records, kinesalite_endpoint, stream, [(f"k{i}", f"b{i}") for i in range(10)])
            # the thief never renews: after the failover time a takes the lease back and reads
            # on exactly after the thief's checkpoint
            await wait_for(lambda: held(a) == {shard}, 6 * FAILOVER,
                           message="a did not take the expired lease back")
            await wait_for(lambda: len(rec.ok) >= 20, 30, message="later records missing")
    assert counter(metrics.leases_taken, mapping.uuid) == taken + 2
    assert [s.seq for s in rec.seen] == [q for _s, q in first + more]


async def test_dynamodb_streams_shards_move_through_the_same_lease_table(
        dynamodb_local_endpoint: str) -> None:
    from tests.integration.test_dynamodb_streams_source import create_table, pks, put

    ep = dynamodb_local_endpoint
    table, arn = create_table(ep)
    first_keys = [f"a{i}" for i in range(10)]
    for key in first_keys:
        put(ep, table, key)
    rec = EventRecorder()
    async with function_host_for_events(rec) as host:
        mapping = source_mapping(arn, starting_position="TRIM_HORIZON", batch_size=4)
        # the lease table is found through aws.dynamodb (no state.endpoint_url)
        config = dataclasses.replace(
            source_config(mapping, lambda_endpoint=host.endpoint, state=Path("unused.db"),
                          dynamodb=ep),
            state=StateConfig(store="dynamodb", table=unique_name("ddb-leases"),
                              failover_seconds=FAILOVER, handoff_grace_seconds=5.0))
        async with contextlib.AsyncExitStack() as first, contextlib.AsyncExitStack() as second:
            a = await first.enter_async_context(running(config))
            b = await second.enter_async_context(running(replica(config)))
            await wait_for(lambda: len(rec.seen()) >= 10, 30, message="first records missing")
            owner, other = (first, b) if held(a) else (second, a)
            assert held(a) or held(b)
            await owner.aclose()  # SIGTERM path: final checkpoint, then release
            for i in range(10):
                await asyncio.to_thread(put, ep, table, f"b{i}")
            await wait_for(lambda: len(rec.seen()) >= 20, 10 * FAILOVER,
                           message="the other replica did not carry on")
            assert held(other)
    assert pks(rec.seen()) == first_keys + [f"b{i}" for i in range(10)]


async def test_a_replica_cut_off_from_the_lease_table_stops_within_the_failover_time(
        kinesalite_endpoint: str, tmp_path: Path) -> None:
    stream = unique_name("cutoff")
    arn = create_stream(kinesalite_endpoint, stream, shards=1)
    (shard,) = {s for s, _ in put_records(kinesalite_endpoint, stream, [("k", "r0")])}
    rec = Recorder()
    server = await asyncio.to_thread(start_server, "dynamodb-local", tmp_path)
    try:
        async with function_host(rec) as host:
            mapping = mapping_for(arn, batch_size=5)
            config = lease_config(mapping, kinesalite_endpoint, host.endpoint, server.endpoint,
                                  unique_name("cutoff"))
            errors = counter(metrics.lease_errors, mapping.uuid)
            expired = counter(metrics.leases_lost, mapping.uuid, reason="expired")
            async with running(config) as a:
                runner = a.mappings[mapping.uuid]
                assert isinstance(runner, ShardCoordinator)
                await wait_for(lambda: len(rec.ok) >= 1 and shard in runner.readers, 30,
                               message="the shard was never read")
                await asyncio.to_thread(server.stop)  # the lease table is gone for this replica
                stopped = time.monotonic()
                await wait_for(lambda: shard not in runner.readers and not held(a),
                               4 * FAILOVER, message="kept reading without a renewed lease")
                # others may take the lease after the failover time: this replica stops first
                assert time.monotonic() - stopped <= 2 * FAILOVER
                assert counter(metrics.lease_errors, mapping.uuid) > errors
                assert counter(metrics.leases_lost, mapping.uuid, reason="expired") == expired + 1
    finally:
        server.stop()
