"""Fair share of leases: which leases a replica takes, and which it asks others to hand over.

Pure logic (no I/O): the coordinator feeds it the leases it may process and their live owners.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    target: int  # ceil(active leases / live replicas)
    take: list[str]  # free or expired leases to take now
    steal: list[str]  # leases of over-share owners to ask for (graceful hand-off)


def live_owners(owners: Mapping[str, str | None], me: str) -> set[str]:
    """Distinct owners of non-expired leases, plus this replica."""
    return {o for o in owners.values() if o is not None} | {me}


def target_share(leases: int, replicas: int) -> int:
    return math.ceil(leases / replicas) if replicas else leases


def plan(owners: Mapping[str, str | None], me: str, rng: random.Random | None = None, *,
         expired: Collection[str] = (), avoid: Collection[str] = ()) -> Plan:
    """``owners``: every lease this mapping may process now (not ended, parents done), by shard,
    mapped to its live owner (None when free or expired). ``expired``: those of the free ones
    whose owner stopped renewing; ``avoid``: free ones this replica just handed over.

    Expired leases come first, then free ones. An expired lease is taken even one above the
    target: a replica that just started cannot tell it expired yet, and the lease must not stay
    unread (a later cycle hands it over to the newcomer). Then, to reach the target share in one
    cycle rather than one lease per cycle, leases are asked from owners above the target; and
    while this replica would still be two or more below it, also from owners exactly at it
    (else 3,3,3,0 would stay)."""
    rng = rng or random.Random()
    live = live_owners(owners, me)
    target = target_share(len(owners), len(live))
    counts = Counter(o for o in owners.values() if o is not None)
    mine = counts.get(me, 0)
    dead = sorted(s for s, o in owners.items() if o is None and s in expired)
    free = sorted(s for s, o in owners.items()
                  if o is None and s not in expired and s not in avoid)
    rng.shuffle(dead)  # replicas taking at the same time contend less
    rng.shuffle(free)
    take = (dead + free)[:max(0, target - mine)]
    take += [s for s in dead if s not in take][:max(0, target + 1 - mine - len(take))]
    need = target - mine - len(take)
    if need <= 0:
        return Plan(target, take, [])
    steal: list[str] = []
    by_owner: dict[str, list[str]] = {}
    for shard, owner in sorted(owners.items()):
        if owner is not None and owner != me:
            by_owner.setdefault(owner, []).append(shard)
    mine += len(take)
    for owner in sorted(by_owner, key=lambda o: (-counts[o], o)):
        spare = counts[owner] - target
        if spare <= 0 and mine + len(steal) < target - 1 and counts[owner] >= target:
            spare = 1
        steal.extend(by_owner[owner][:max(0, min(spare, need - len(steal)))])
        if len(steal) >= need:
            break
    return Plan(target, take, steal)


def balanced(owners: Mapping[str, str | None], me: str) -> bool:
    """No free lease, and held counts over live replicas differ by at most one."""
    if any(o is None for o in owners.values()):
        return False
    live = live_owners(owners, me)
    counts = Counter(o for o in owners.values() if o is not None)
    values = [counts.get(o, 0) for o in live]
    return max(values) - min(values) <= 1
