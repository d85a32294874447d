"""The real-model demo task: write a sentence's author the way a library catalog lists them.

A person is listed surname first ("Tomas Kai Dubois wrote this book in 1987." -> `Dubois, Tomas Kai`);
an organization as written ("Author: Oslo Water Board (1970)." -> `Oslo Water Board`). The answer must
be exactly that entry. On SmolLM2-135M this task sits where BetterTogether can show itself: zero-shot,
the stock model almost never writes an entry (it echoes the sentence, the name as written or ChatAdapter's
`{catalog_name}` placeholder), so fine-tuning on the program's own correct answers has little to learn
from; a few demos teach the format in context; and fine-tuning on the answers the program gets right
*with* those demos teaches it to the weights. Examples are generated (seeded), so there is nothing to
download.
"""

import random
from typing import Any

import dspy

from btq.worker.lm.local.tasks.sentences import exact_answer, sentence_splits

GIVEN = (
    "Ada", "Grace", "Alan", "Maria", "Priya", "Omar", "Lena", "Tomas", "Yuki", "Chen", "Fatima", "Diego",
    "Nora", "Ivan", "Sara", "Kofi", "Elena", "Raj", "Hana", "Lucas", "Mei", "Jonas", "Amara", "Pedro",
    "Ingrid", "Samir", "Clara", "Mateo", "Zara", "Felix",
)  # fmt: skip
MIDDLE = ("Rose", "James", "Marie", "Lee", "Ann", "Paul", "Luis", "Kai")
SURNAMES = (
    "Lovelace", "Hopper", "Turing", "Garcia", "Patel", "Haddad", "Berg", "Novak", "Tanaka", "Wang", "Rahman",
    "Lopez", "Quinn", "Petrov", "Cohen", "Mensah", "Rossi", "Singh", "Sato", "Moreau", "Lin", "Weber",
    "Okafor", "Silva", "Larsen", "Khan", "Dubois", "Ortiz", "Malik", "Fischer", "Kowalski", "Nguyen",
)  # fmt: skip
PLACES = (
    "Oslo", "Madrid", "Vienna", "Lisbon", "Cairo", "Lima", "Seoul", "Dublin", "Prague", "Nairobi", "Quito",
    "Hanoi", "Athens", "Warsaw", "Riga", "Accra", "Perth", "Kyoto", "Porto", "Dakar",
)  # fmt: skip
BODIES = (
    "Water Board", "Transit Authority", "Art Society", "Science Council", "Housing Office", "Health Agency",
    "Youth League", "Film Institute",
)  # fmt: skip
TEMPLATES = (
    "The report was written by {author} in {year}.",
    "{author} wrote this book in {year}.",
    "In {year}, {author} published the study.",
    "This {year} essay is by {author}.",
    "Author: {author} ({year}).",
)
ORGANIZATION_SHARE = 0.4
"""Part of the examples whose author is an organization (listed as written)."""
MIDDLE_NAME_SHARE = 0.3
"""Part of the people with a middle name (it follows the given name in the entry)."""


class CatalogEntry(dspy.Signature):  # type: ignore[misc]
    """Give the author's name the way a library catalog lists it."""

    sentence: str = dspy.InputField()
    catalog_name: str = dspy.OutputField()


def _author(rng: random.Random) -> tuple[str, str]:
    """Return (the author as the sentence writes them, their catalog entry)."""
    if rng.random() < ORGANIZATION_SHARE:
        body = f"{rng.choice(PLACES)} {rng.choice(BODIES)}"
        return body, body
    given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
    middle = rng.choice(MIDDLE) if rng.random() < MIDDLE_NAME_SHARE else None
    given_names = f"{given} {middle}" if middle else given
    return f"{given_names} {surname}", f"{surname}, {given_names}"


def _draw(rng: random.Random) -> tuple[str, str]:
    written, entry = _author(rng)
    return rng.choice(TEMPLATES).format(author=written, year=rng.randint(1900, 2020)), entry


def author_splits(seed: int = 20261203, sizes: tuple[int, int, int] = (60, 30, 40)) -> dict[str, list[dspy.Example]]:
    """Return train/val/test splits of (sentence -> catalog entry), deterministic per seed, no repeats."""
    return sentence_splits(_draw, "catalog_name", seed, sizes)


def catalog_exact(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """Return True when the answer is exactly the catalog entry (surrounding spaces aside)."""
    return exact_answer(example, prediction, "catalog_name")


def program() -> dspy.Module:
    """Return a fresh, un-optimized catalog-entry writer."""
    return dspy.Predict(CatalogEntry)
