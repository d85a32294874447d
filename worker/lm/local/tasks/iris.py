"""The BetterTogether paper's Iris task: name an iris's species from its four measurements.

The data is Fisher's iris data set (150 flowers, 50 per species: setosa, versicolor, virginica; sepal and
petal length and width in cm) as scikit-learn ships it: `sklearn.datasets.load_iris()` reads
`sklearn/datasets/data/iris.csv` from the installed package, so nothing is downloaded. The split follows
the paper (arXiv 2407.10930): the 150 flowers shuffled by a seed, 50 train / 50 val (the paper's dev) / 50
test, and for prompt optimization the train split cut into 15 train (`prompt_train`) and 35 validation
(`prompt_val`). The measurements are text inputs, the species the one output; the metric is the species
name, exactly (case and surrounding spaces aside).
"""

import random
from typing import Any

import dspy

SPECIES = ("setosa", "versicolor", "virginica")
"""The answers, as scikit-learn's `target_names` spell them."""

SIZES = (50, 50, 50)
"""Train, val and test sizes (the paper's)."""

PROMPT_TRAIN = 15
"""Of the train split, the first this many are the prompt optimizer's trainset, the rest its valset."""

SEEDS = range(10)
"""Seeds with a registered dataset: `local.iris.seed<N>` (and `local.iris`, seed 0)."""

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
"""Input fields, in the order of scikit-learn's columns."""


class IrisSpecies(dspy.Signature):  # type: ignore[misc]
    """Given the petal and sepal dimensions in cm, predict the iris species."""

    sepal_length: str = dspy.InputField()
    sepal_width: str = dspy.InputField()
    petal_length: str = dspy.InputField()
    petal_width: str = dspy.InputField()
    species: str = dspy.OutputField(desc="setosa, versicolor, or virginica")


def dataset_name(seed: int) -> str:
    """Return the registered name of the split drawn with `seed`."""
    return f"local.iris.seed{seed}"


def _flowers() -> list[dspy.Example]:
    from sklearn.datasets import load_iris  # the `local` extra; imported only when the data is loaded

    data = load_iris()
    names = [str(n) for n in data.target_names]
    if tuple(names) != SPECIES:
        raise ValueError(f"unexpected iris species {names}")
    return [
        dspy.Example(
            **{f: f"{float(v):.1f}" for f, v in zip(FEATURES, row, strict=True)}, species=names[int(t)]
        ).with_inputs(*FEATURES)
        for row, t in zip(data.data, data.target, strict=True)
    ]


def iris_splits(seed: int = 0) -> dict[str, list[dspy.Example]]:
    """Return the paper's 50/50/50 split of the 150 flowers, shuffled by `seed`, plus the prompt split.

    Splits: `train`, `val`, `test` (50 each), `prompt_train` (the first 15 of train) and `prompt_val`
    (the other 35). The same seed gives the same split on every machine.
    """
    flowers = _flowers()
    random.Random(seed).shuffle(flowers)
    a, b = SIZES[0], SIZES[0] + SIZES[1]
    train = flowers[:a]
    return {
        "train": train,
        "val": flowers[a:b],
        "test": flowers[b : b + SIZES[2]],
        "prompt_train": train[:PROMPT_TRAIN],
        "prompt_val": train[PROMPT_TRAIN:],
    }


def species_exact(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """Return True when the answer is the species' name (case and surrounding spaces aside)."""
    answer = str(getattr(prediction, "species", "") or "").strip().lower()
    return answer == str(example.species)


def program() -> dspy.Module:
    """Return a fresh, un-optimized species classifier."""
    return dspy.Predict(IrisSpecies)
