"""BetterTogether's generator and trainset order, carried between steps as (seed, shuffles done) and replayed.

The in-process loop keeps one `random.Random(seed)` and shuffles the trainset with it before each step.
A step record carries it as the seed and the length of every list shuffled so far: replaying those
shuffles on a fresh `random.Random(seed)` gives the same Mersenne Twister state, bit for bit, in a few
bytes instead of the 6-7 KB of `getstate()` as JSON. The trainset order is what the same replay does to
`range(n)`, so it is left out of the record when it equals that. A generator used for anything else than
shuffles (or rebuilt from a full state of an older record) is carried as its full state and the order as
it is, so the form is always exact.
"""

import random
from collections.abc import MutableSequence
from typing import Any

from btq.schemas.result import RngReplay, StepRecord


class ReplayableRandom(random.Random):
    """A `random.Random` that remembers its seed and the lengths of the lists it shuffled."""

    def __init__(self, seed: int | None) -> None:
        super().__init__(seed)
        self.initial_seed = seed or 0
        self.shuffles: list[int] = []
        self.replayable = seed is not None  # seeded from the OS: only its full state can travel

    def shuffle(self, x: MutableSequence[Any]) -> None:  # type: ignore[override]
        """Shuffle `x` in place, as `random.Random.shuffle`, and remember its length."""
        self.shuffles.append(len(x))
        super().shuffle(x)

    def setstate(self, state: tuple[Any, ...]) -> None:
        """Restore a full state: the generator is no longer described by its seed and shuffles."""
        super().setstate(state)
        self.replayable = False


def replay(carried: RngReplay) -> tuple[ReplayableRandom, list[int]]:
    """Rebuild the generator, and the order `range(carried.order)` it shuffled (empty without one)."""
    rng = ReplayableRandom(carried.seed)
    order = list(range(carried.order or 0))
    for length in carried.shuffles:
        # Shuffling consumes the same draws for any list of one length: only the order's own are kept.
        rng.shuffle(order if length == len(order) else list(range(length)))
    return rng, order


def restore(record: StepRecord, seed: int | None) -> tuple[ReplayableRandom, list[int]]:
    """Return the generator and trainset order a step record carries (compact, or as an older record has them)."""
    if record.rng is not None:
        rng, order = replay(record.rng)
        return rng, order if record.rng.order is not None else list(record.train_order)
    rng = ReplayableRandom(seed)
    state = record.rng_state
    rng.setstate((state[0], tuple(state[1]), state[2]))  # type: ignore[arg-type]
    return rng, list(record.train_order)


def carried(rng: ReplayableRandom, order: list[int]) -> dict[str, Any]:
    """Return the record fields carrying `rng` and `order`: as (seed, shuffles) when that replays exactly."""
    if rng.replayable:
        for implied in (len(order), None):  # the order left out when the replay rebuilds it too
            compact = RngReplay(seed=rng.initial_seed, shuffles=list(rng.shuffles), order=implied)
            again, again_order = replay(compact)
            if again.getstate() == rng.getstate() and (implied is None or again_order == order):
                return {"rng": compact, "rng_state": [], "train_order": [] if implied is not None else order}
    version, internal, gauss = rng.getstate()
    return {"rng": None, "rng_state": [version, list(internal), gauss], "train_order": order}
