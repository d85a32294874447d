"""Generated sentence tasks: seeded, repeat-free train/val/test splits and exact-answer metrics."""

import random
from collections.abc import Callable
from typing import Any

import dspy


def sentence_splits(
    draw: Callable[[random.Random], tuple[str, str]], answer_field: str, seed: int, sizes: tuple[int, int, int]
) -> dict[str, list[dspy.Example]]:
    """Return train/val/test splits of (`sentence` -> `answer_field`), deterministic per seed.

    `draw(rng)` returns one (sentence, answer); a sentence drawn twice is drawn again, so no sentence is
    in two splits (or twice in one).
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[dspy.Example] = []
    while len(examples) < sum(sizes):
        sentence, answer = draw(rng)
        if sentence in seen:
            continue
        seen.add(sentence)
        examples.append(dspy.Example(sentence=sentence, **{answer_field: answer}).with_inputs("sentence"))
    a, b = sizes[0], sizes[0] + sizes[1]
    return {"train": examples[:a], "val": examples[a:b], "test": examples[b:]}


def exact_answer(example: dspy.Example, prediction: Any, field: str) -> bool:
    """Return True when the prediction's `field` is exactly the example's (surrounding spaces aside)."""
    expected: str = example[field]
    return str(getattr(prediction, field, "") or "").strip() == expected
