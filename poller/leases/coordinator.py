"""Lease coordination for one stream mapping over the DynamoDB lease table (KCL's split):

- the renewer (its own task, never blocked by invokes) bumps every held lease's counter each
  third of the failover time; a refused renewal is a lost lease and the shard is abandoned;
- the taker scans the mapping's leases every fifth of the failover time, creates leases for
  newly discovered shards, takes free and expired leases up to the fair share
  ceil(active leases / live replicas), and asks over-share owners for graceful hand-offs;
- a hand-off (asked for, shard ended, or SIGTERM) stops reading, lets the in-flight batches
  finish within the grace period, writes the final fenced checkpoint, then releases the lease.

Coordination traffic is one Scan per replica per cycle plus one renewal per held lease: it grows
with the fleet and the shard count, never with the record volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from poller.awsjson import AwsError
from poller.leases import SHARD_END, TRIM_HORIZON
from poller.leases.balance import balanced, plan
from poller.leases.dynamodb import DynamoDBLeaseStore, Lease, LeaseLost, lease_key
from poller.observability import metrics

log = structlog.get_logger(__name__)


class ShardRunner(Protocol):
    """What the coordinator drives (poller.sources.shards.ShardCoordinator)."""

    checkpoints: dict[str, str]
    owned: set[str] | None

    def known_shards(self) -> dict[str, tuple[str, ...]]: ...

    def adopt(self, shard: str, checkpoint: str) -> None: ...

    def abandon(self, shard: str) -> None: ...

    async def hand_off(self, shard: str, grace: float) -> None: ...


class LeaseCoordinator:
    def __init__(self, store: DynamoDBLeaseStore, mapping: str, runner: ShardRunner,
                 flush: Callable[[], Awaitable[None]], *, failover_seconds: float,
                 grace_seconds: float,
                 discard: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.mapping = mapping
        self.runner = runner
        self._flush = flush
        self._discard = discard  # drops a shard's unwritten checkpoint (from an older ownership)
        self.failover = failover_seconds
        self.grace = grace_seconds
        self._seen: dict[str, tuple[int, str | None, float]] = {}  # counter, owner, since
        self._asked: dict[str, tuple[float, str | None]] = {}  # shard -> (when, of whom)
        self._released: dict[str, float] = {}  # shard -> when this replica handed it over
        self._handing_off: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unbalanced_since: float | None = None
        self.leases: list[Lease] = []  # as of the last scan
        self._held_gauge = metrics.leases_held.labels(mapping)
        self._taken = metrics.leases_taken.labels(mapping)
        self._stolen = metrics.leases_stolen.labels(mapping)
        self._released_total = metrics.leases_released.labels(mapping)
        runner.owned = set()
        store.on_lost.append(self._on_lost)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(self.failover / 3, self.renew),
                                name=f"lease-renewer-{self.mapping}"),
            asyncio.create_task(self._every(max(0.2, self.failover / 5), self.take_cycle),
                                name=f"lease-taker-{self.mapping}"),
        ]

    async def _every(self, interval: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            started = time.monotonic()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.lease_errors.labels(self.mapping).inc()
                log.warning("lease_cycle_failed", mapping=self.mapping, step=step.__name__,
                            error=str(exc))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def stop_taking(self) -> None:
        """Stop taking leases (SIGTERM); renewal goes on until :meth:`release_all`."""
        if len(self._tasks) > 1:
            taker = self._tasks.pop()
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)

    async def release_all(self) -> None:
        """After the final checkpoints are written: release every held lease, stop renewing."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._handing_off.values(), return_exceptions=True)
        self._tasks = []
        for key in list(self._mine()):
            shard = self._shard(key)
            try:
                await self.store.release(self.mapping, shard)
                self._released_total.inc()
            except (LeaseLost, AwsError) as exc:
                log.warning("lease_release_failed", mapping=self.mapping, shard=shard,
                            error=str(exc))
        self._held_gauge.set(0)

    def _mine(self) -> list[str]:
        prefix = f"{self.mapping}:"
        return [k for k in self.store.held if k.startswith(prefix)]

    def _shard(self, key: str) -> str:
        return key[len(self.mapping) + 1:]

    # --- renewal -------------------------------------------------------------------------------

    async def renew(self) -> None:
        now = time.monotonic()
        for key in self._mine():  # renewals failing for the whole failover time: others take it
            held = self.store.held.get(key)
            if held is not None and now - held.renewed_at > self.failover:
                self.store.lost(self.mapping, self._shard(key), "expired")
        keys = self._mine()
        results = await asyncio.gather(*(self.store.renew(k) for k in keys),
                                       return_exceptions=True)
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, LeaseLost):
                self.store.lost(self.mapping, self._shard(key), "renew_refused")
            elif isinstance(result, BaseException):
                metrics.lease_errors.labels(self.mapping).inc()
        self._held_gauge.set(len(self._mine()))

    def _on_lost(self, mapping: str, shard: str, reason: str) -> None:
        if mapping != self.mapping:
            return
        log.warning("lease_lost", mapping=mapping, shard=shard, reason=reason)
        self.runner.abandon(shard)
        self._held_gauge.set(len(self._mine()))

    # --- taking --------------------------------------------------------------------------------

    def _owner(self, lease: Lease, now: float) -> str | None:
        """The live owner as this replica sees it: None when free or expired."""
        seen = self._seen.get(lease.shard)
        if seen is None or seen[0] != lease.counter or seen[1] != lease.owner:
            self._seen[lease.shard] = (lease.counter, lease.owner, now)
            since = now
        else:
            since = seen[2]
        if lease.owner is None:
            return None
        if lease.owner == self.store.owner:
            return lease.owner if lease_key(self.mapping, lease.shard) in self.store.held else None
        return lease.owner if now - since < self.failover else None

    async def _create_missing(self, existing: set[str]) -> bool:
        created = False
        for shard, parents in self.runner.known_shards().items():
            if shard in existing:
                continue
            checkpoint = self.runner.checkpoints.get(shard, TRIM_HORIZON)
            created |= await self.store.create(self.mapping, shard, checkpoint, parents)
        return created

    async def take_cycle(self) -> None:
        leases = await self.store.list_leases(self.mapping)
        if await self._create_missing({lease.shard for lease in leases}):
            leases = await self.store.list_leases(self.mapping)
        self.leases = leases
        now = time.monotonic()
        by_shard = {lease.shard: lease for lease in leases}
        mine = set(self._mine())
        for lease in leases:
            key = lease.key
            if key in mine and lease.owner != self.store.owner:
                self.store.lost(self.mapping, lease.shard, "taken")
            elif key not in mine and lease.shard not in self._handing_off:
                self.runner.checkpoints[lease.shard] = lease.checkpoint
        for lease in leases:  # held leases to give up: asked for, or the shard ended
            if lease.key not in self.store.held or lease.shard in self._handing_off:
                continue
            ended = self.runner.checkpoints.get(lease.shard) == SHARD_END
            if ended or (lease.handoff_to and lease.handoff_to != self.store.owner):
                self._start_hand_off(lease.shard, "shard_end" if ended else "rebalance")
        owners: dict[str, str | None] = {}
        expired: set[str] = set()
        listed = self.runner.known_shards()
        for lease in leases:
            if lease.checkpoint == SHARD_END or lease.shard in self._handing_off:
                continue
            if listed and lease.shard not in listed:
                continue  # the shard is gone from the stream (trimmed): nothing to read
            if any(by_shard[p].checkpoint != SHARD_END for p in lease.parents if p in by_shard):
                continue  # parent-before-child, across replicas
            owner = owners[lease.shard] = self._owner(lease, now)
            if owner is None and lease.owner not in (None, self.store.owner):
                expired.add(lease.shard)
        for shard, at in list(self._released.items()):
            if now - at > self.failover:
                del self._released[shard]
        decision = plan(owners, self.store.owner, expired=expired, avoid=set(self._released))
        for shard in decision.take:
            lease = by_shard[shard]
            try:
                taken = await self.store.take(lease)
            except LeaseLost:
                continue  # someone else was faster
            log.info("lease_taken", mapping=self.mapping, shard=shard,
                     checkpoint=taken.checkpoint,
                     expired_owner=lease.owner if shard in expired else None)
            self._taken.inc()
            owners[shard] = self.store.owner
            self._asked.pop(shard, None)
            self._adopt(shard, taken.checkpoint)
        for shard in decision.steal:
            lease = by_shard[shard]
            asked = self._asked.get(shard)
            if asked is None or asked[1] != lease.owner or lease.handoff_to != self.store.owner:
                if await self.store.request_handoff(lease):
                    self._asked[shard] = (now, lease.owner)
                continue
            if now - asked[0] > self.failover + self.grace:  # the owner ignored it: steal
                try:
                    taken = await self.store.take(lease)
                except LeaseLost:
                    continue
                log.warning("lease_stolen", mapping=self.mapping, shard=shard,
                            owner=lease.owner)
                self._stolen.inc()
                self._asked.pop(shard, None)
                owners[shard] = self.store.owner
                self._adopt(shard, taken.checkpoint)
        for shard in list(self._asked):
            if shard not in decision.steal:
                self._asked.pop(shard)
        self._held_gauge.set(len(self._mine()))
        self._observe_balance(owners, now)

    def _adopt(self, shard: str, checkpoint: str) -> None:
        if self._discard is not None:
            self._discard(self.mapping, shard)
        self.runner.adopt(shard, checkpoint)

    def _observe_balance(self, owners: dict[str, str | None], now: float) -> None:
        if not owners or balanced(owners, self.store.owner):
            if self._unbalanced_since is not None:
                seconds = now - self._unbalanced_since
                metrics.lease_balance_seconds.labels(self.mapping).observe(seconds)
                log.info("leases_balanced", mapping=self.mapping, seconds=round(seconds, 2))
                self._unbalanced_since = None
        elif self._unbalanced_since is None:
            self._unbalanced_since = now

    # --- hand-off ------------------------------------------------------------------------------

    def _start_hand_off(self, shard: str, reason: str) -> None:
        self._handing_off[shard] = asyncio.create_task(self._hand_off(shard, reason),
                                                       name=f"handoff-{self.mapping}-{shard}")

    async def _hand_off(self, shard: str, reason: str) -> None:
        try:
            await self.runner.hand_off(shard, self.grace)
            await self._flush()  # the final checkpoint, fenced
            await self.store.release(self.mapping, shard)
            self._released_total.inc()
            self._released[shard] = time.monotonic()  # leave it to the replica that asked
            log.info("lease_released", mapping=self.mapping, shard=shard, reason=reason)
        except (LeaseLost, AwsError) as exc:
            log.warning("lease_release_failed", mapping=self.mapping, shard=shard,
                        error=str(exc))
            if lease_key(self.mapping, shard) in self.store.held:  # still ours: read on
                self.runner.adopt(shard, self.runner.checkpoints.get(shard, TRIM_HORIZON))
        finally:
            self._handing_off.pop(shard, None)
            self._held_gauge.set(len(self._mine()))

    async def close(self) -> None:
        for t in [*self._tasks, *self._handing_off.values()]:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, *self._handing_off.values(),
                                 return_exceptions=True)
