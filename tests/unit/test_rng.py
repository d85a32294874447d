"""The generator carried between steps: (seed, shuffles done) replays to the exact Mersenne Twister state."""

import json
import random
from typing import Any

from btq.schemas.result import RngReplay, StepOutcome, StepRecord
from btq.worker.core.rng import ReplayableRandom, carried, restore


def _record(**fields: Any) -> StepRecord:
    return StepRecord(
        index=1,
        strategy="p",
        optimizer_key="p",
        outcome=StepOutcome.SUCCEEDED,
        started_at=0.0,
        finished_at=0.0,
        **{"train_order": [], **fields},
    )


def test_seed_and_shuffles_rebuild_the_generator_and_order_kept_in_process() -> None:
    reference, rng = random.Random(7), ReplayableRandom(7)
    expected, order = list(range(100)), list(range(100))
    for _ in range(3):
        reference.shuffle(expected)
        rng.shuffle(order)
    assert order == expected
    fields = carried(rng, order)
    assert fields == {"rng": RngReplay(seed=7, shuffles=[100, 100, 100], order=100), "rng_state": [], "train_order": []}
    again, again_order = restore(_record(**fields), seed=7)
    assert again.getstate() == reference.getstate() and again_order == expected
    assert again.random() == reference.random()


def test_an_order_the_replay_does_not_rebuild_travels_as_it_is() -> None:
    rng, order = ReplayableRandom(5), [3, 1, 2, 0]
    rng.shuffle(list(range(9)))  # another list than the order
    fields = carried(rng, order)
    assert fields["rng"] == RngReplay(seed=5, shuffles=[9]) and fields["train_order"] == order
    again, again_order = restore(_record(**fields), seed=5)
    assert again.getstate() == rng.getstate() and again_order == order


def test_a_generator_used_beyond_shuffles_travels_as_its_full_state() -> None:
    rng = ReplayableRandom(3)
    rng.shuffle(list(range(10)))
    rng.random()  # not a shuffle: replaying the shuffles would not give this state
    fields = carried(rng, [0, 1])
    assert fields["rng"] is None and len(fields["rng_state"]) == 3 and fields["train_order"] == [0, 1]
    again, order = restore(_record(**fields), seed=3)
    assert again.getstate() == rng.getstate() and order == [0, 1]


def test_a_record_of_the_older_format_still_reads() -> None:
    old, order = random.Random(11), list(range(20))
    old.shuffle(order)
    version, internal, gauss = old.getstate()
    stored = json.loads(_record().model_dump_json(exclude={"rng"}))  # as an older worker wrote it
    stored.update(rng_state=[version, list(internal), gauss], train_order=order)
    restored, restored_order = restore(StepRecord.model_validate_json(json.dumps(stored)), seed=11)
    assert restored.getstate() == old.getstate() and restored_order == order
    restored.shuffle(restored_order)  # a restored full state keeps travelling exactly, as a full state
    assert carried(restored, restored_order)["rng"] is None
