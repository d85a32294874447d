"""The real-model demo task: name the city a traveller went to, in a sentence that names three cities.

Each sentence names where the person comes from (or was born), where the trip started and where it
ended, in one of several orders: "Born in Accra, Ivan flew to Riga after a conference in Hanoi." -> `Riga`.
The answer must be exactly the destination's name. On SmolLM2-135M this task sits where BetterTogether
can show itself: the stock model gets about a third right zero-shot (it often answers the first city
or the home town, or breaks the output format); a few demos lift it; and fine-tuning on the program's own
correct answers (self-distillation, no oracle) teaches it the sentence shapes. Examples are generated
(seeded), so there is no data set to download.
"""

import random
from typing import Any

import dspy

from btq.worker.lm.local.tasks.sentences import exact_answer, sentence_splits

PEOPLE = (
    "Ada", "Grace", "Alan", "Maria", "Priya", "Omar", "Lena", "Tomas", "Yuki", "Chen", "Fatima", "Diego",
    "Nora", "Ivan", "Sara", "Kofi", "Elena", "Raj", "Hana", "Lucas", "Mei", "Jonas", "Amara", "Pedro",
    "Ingrid", "Samir", "Clara", "Mateo", "Zara", "Felix",
)  # fmt: skip
CITIES = (
    "Oslo", "Madrid", "Vienna", "Lisbon", "Cairo", "Lima", "Seoul", "Dublin", "Prague", "Nairobi", "Quito",
    "Hanoi", "Athens", "Warsaw", "Bogota", "Manila", "Riga", "Tunis", "Zagreb", "Accra", "Perth", "Kyoto",
    "Porto", "Bergen", "Dakar", "Lyon", "Osaka", "Krakow", "Havana", "Denver", "Malaga", "Gdansk",
)  # fmt: skip
TEMPLATES = (
    "{who}, who grew up in {home}, flew from {start} to {dest} on Monday.",
    "{who} left {start} and took the night train to {dest}, far from home in {home}.",
    "After a week in {start}, {who} of {home} moved on to {dest}.",
    "{who} arrived in {dest}, having set off from {start}; {who} was born in {home}.",
    "{who} drove to {dest}; the trip started in {start}, near {who}'s hometown {home}.",
    "Leaving {start} behind, {who} from {home} sailed for {dest}.",
    "Born in {home}, {who} flew to {dest} after a conference in {start}.",
    "{dest} was the last stop: {who} had come from {start}, a day's ride from {home}.",
)
"""Sentence shapes: the destination comes first, last or in the middle, never in a fixed place."""


class Destination(dspy.Signature):  # type: ignore[misc]
    """Name the city the person travelled to."""

    sentence: str = dspy.InputField(desc="one sentence about a trip")
    destination: str = dspy.OutputField(desc="the city name only")


def _draw(rng: random.Random) -> tuple[str, str]:
    home, start, dest = rng.sample(CITIES, 3)
    return rng.choice(TEMPLATES).format(who=rng.choice(PEOPLE), home=home, start=start, dest=dest), dest


def trip_splits(seed: int = 20261203, sizes: tuple[int, int, int] = (60, 40, 40)) -> dict[str, list[dspy.Example]]:
    """Return train/val/test splits of (trip sentence -> destination), deterministic per seed, no repeats."""
    return sentence_splits(_draw, "destination", seed, sizes)


def destination_exact(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """Return True when the answer is exactly the destination's name (surrounding spaces aside)."""
    return exact_answer(example, prediction, "destination")


def program() -> dspy.Module:
    """Return a fresh, un-optimized destination finder."""
    return dspy.Predict(Destination)
