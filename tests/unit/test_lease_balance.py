"""Fair-share planning of shard leases (pure logic)."""

from __future__ import annotations

import random

import pytest

from poller.leases.balance import balanced, plan, target_share


def owners_of(counts: dict[str, int], free: int = 0) -> dict[str, str | None]:
    owners: dict[str, str | None] = {}
    n = 0
    for owner, count in counts.items():
        for _ in range(count):
            owners[f"s{n:02d}"] = owner
            n += 1
    for _ in range(free):
        owners[f"s{n:02d}"] = None
        n += 1
    return owners


def simulate(owners: dict[str, str | None], replicas: list[str], cycles: int) -> int:
    """Run plan() for each replica in turn, granting takes and steals at once; returns the
    number of rounds until balanced."""
    rng = random.Random(7)
    for round_ in range(cycles):
        if all(o is not None for o in owners.values()) and balanced(owners, replicas[0]) and \
                set(owners.values()) >= set(replicas):
            return round_
        for me in replicas:
            p = plan(owners, me, rng)
            for shard in [*p.take, *p.steal]:
                owners[shard] = me
    raise AssertionError(f"not balanced after {cycles} rounds: {owners}")


@pytest.mark.parametrize(("shards", "replicas", "target"),
                         [(8, 3, 3), (8, 2, 4), (9, 4, 3), (1, 3, 1), (0, 2, 0), (10, 1, 10)])
def test_target_share_is_ceil(shards: int, replicas: int, target: int) -> None:
    assert target_share(shards, replicas) == target


def test_free_leases_first_up_to_the_share() -> None:
    owners = owners_of({"a": 3}, free=5)
    p = plan(owners, "b", random.Random(1))
    # live replicas: a and b -> target ceil(8 / 2) = 4; all four come from free leases
    assert p.target == 4
    assert len(p.take) == 4 and all(owners[s] is None for s in p.take)
    assert p.steal == []


def test_new_replica_moves_several_leases_in_one_cycle() -> None:
    owners = owners_of({"a": 4, "b": 4})
    p = plan(owners, "c")
    assert p.target == 3
    assert p.take == []
    assert len(p.steal) == 2  # one from each over-share owner, in the same cycle
    assert {owners[s] for s in p.steal} == {"a", "b"}


def test_never_steals_from_an_owner_at_or_below_share_when_one_short() -> None:
    owners = owners_of({"a": 3, "b": 3, "c": 2})
    assert plan(owners, "c") == plan(owners, "c").__class__(3, [], [])


def test_three_three_three_zero_does_not_stay() -> None:
    owners = owners_of({"a": 3, "b": 3, "c": 3})
    p = plan(owners, "d")
    assert p.target == 3 and len(p.steal) >= 1


def test_at_share_takes_nothing() -> None:
    owners = owners_of({"a": 4, "b": 4})
    assert plan(owners, "a").take == [] and plan(owners, "a").steal == []


@pytest.mark.parametrize(("counts", "free", "replicas"), [
    ({"a": 8}, 0, ["a", "b", "c"]),
    ({}, 8, ["a", "b", "c"]),
    ({"a": 3, "b": 3, "c": 3}, 0, ["a", "b", "c", "d"]),
    ({"a": 5}, 3, ["a", "b", "c"]),
    ({"a": 1}, 15, ["a", "b", "c", "d", "e"]),
])
def test_reaches_balance_within_a_few_cycles(counts: dict[str, int], free: int,
                                             replicas: list[str]) -> None:
    owners = owners_of(counts, free)
    rounds = simulate(owners, replicas, 6)
    assert rounds <= 3
    per = [list(owners.values()).count(r) for r in replicas]
    assert max(per) - min(per) <= 1


def test_balanced_needs_no_free_lease_and_spread_of_one() -> None:
    assert balanced(owners_of({"a": 3, "b": 3, "c": 2}), "a")
    assert not balanced(owners_of({"a": 4, "b": 4}), "c")  # c is live and holds none
    assert not balanced(owners_of({"a": 4, "b": 3}, free=1), "a")


def test_expired_leases_come_before_free_ones() -> None:
    owners = owners_of({"a": 2, "b": 2}, free=4)  # s04..s07 free; s06, s07 expired
    for seed in range(20):
        p = plan(owners, "b", random.Random(seed), expired={"s06", "s07"})
        assert p.target == 4 and sorted(p.take) == ["s06", "s07"]


def test_an_expired_lease_is_taken_one_above_the_share_so_it_never_stays_unread() -> None:
    # a and c at their share of 3; the newcomer d cannot tell s08 expired yet
    owners = owners_of({"a": 3, "c": 3, "d": 1}, free=1)
    assert plan(owners, "a", expired={"s07"}).take == ["s07"]
    assert plan(owners, "a").take == []  # a merely free lease waits for one below its share


def test_a_lease_just_handed_over_is_left_to_the_replica_that_asked() -> None:
    owners = owners_of({"a": 2, "b": 3}, free=1)
    assert plan(owners, "a", avoid={"s05"}).take == []
    assert plan(owners, "a").take == ["s05"]
