"""How an evaluation is cut into shards: a cover of the set, near-equal shards, whole rounds, a floor."""

import itertools

import pytest

from btq.worker.sharding.plan import shard_bounds


@pytest.mark.parametrize("size", [16, 17, 100, 200, 201])
@pytest.mark.parametrize("slots", [1, 2, 3, 4, 8, 16, 40])
def test_shards_cover_the_set_in_order_with_sizes_differing_by_at_most_one(size: int, slots: int) -> None:
    bounds = shard_bounds(size, slots, min_examples=8, shards_per_slot=4)
    assert bounds[0][0] == 0 and bounds[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    widths = [end - start for start, end in bounds]
    assert max(widths) - min(widths) <= 1
    assert min(widths) >= 4  # the floor, halved at most
    assert len(bounds) <= 4 * slots
    assert bounds == shard_bounds(size, slots, min_examples=8, shards_per_slot=4)  # the same cut every time


def test_more_shards_than_processes_come_in_whole_rounds() -> None:
    # 200 examples on 16 processes: one round of 16 shards of 12-13, not 25 shards of 8 (two rounds).
    assert len(shard_bounds(200, 16, min_examples=8, shards_per_slot=4)) == 16
    # On 8 processes: three rounds of 8-9.
    bounds = shard_bounds(200, 8, min_examples=8, shards_per_slot=4)
    assert len(bounds) == 24 and {end - start for start, end in bounds} == {8, 9}


def test_a_fleet_larger_than_the_shards_halves_the_floor_rather_than_idle() -> None:
    assert len(shard_bounds(100, 16, min_examples=8, shards_per_slot=4)) == 16  # shards of 6-7
    assert len(shard_bounds(16, 16, min_examples=8, shards_per_slot=4)) == 4  # never below half the floor


def test_few_processes_get_few_large_shards() -> None:
    assert shard_bounds(200, 1, min_examples=8, shards_per_slot=4) == [(0, 50), (50, 100), (100, 150), (150, 200)]
    assert len(shard_bounds(200, 2, min_examples=8, shards_per_slot=4)) == 8
