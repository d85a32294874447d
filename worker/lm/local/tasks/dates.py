"""A task the 135M model starts weak at and learns: write a date in strict ISO 8601 (`YYYY-MM-DD`).

The inputs are dates in everyday English ("the 5th of March, 2024", "Mar 5, 2024"); the answer must
be exactly `2024-03-05`. The stock model rarely gets the format and the month number both right;
fine-tuning on a few dozen dspy-formatted examples teaches it. Examples are generated (seeded), so
there is no data set to download.
"""

import calendar
import random
import re
from typing import Any

import dspy

_ORDINAL = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class NormalizeDate(dspy.Signature):  # type: ignore[misc]
    """Rewrite the date in ISO 8601 format: YYYY-MM-DD, with a zero-padded month and day, nothing else."""

    date_text: str = dspy.InputField(desc="a date written in English")
    iso_date: str = dspy.OutputField(desc="the same date as YYYY-MM-DD")


def _spell(rng: random.Random, year: int, month: int, day: int) -> str:
    name = calendar.month_name[month]
    style = rng.randrange(4)
    if style == 0:
        return f"{name} {day}, {year}"
    if style == 1:
        return f"{day} {name} {year}"
    if style == 2:
        return f"{calendar.month_abbr[month]} {day}, {year}"
    return f"the {day}{_ORDINAL.get(day, 'th')} of {name}, {year}"


def date_splits(seed: int = 20261124, sizes: tuple[int, int, int] = (60, 20, 20)) -> dict[str, list[dspy.Example]]:
    """Return train/val/test splits of (English date -> ISO date) examples, deterministic per seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[dspy.Example] = []
    while len(examples) < sum(sizes):
        year, month = rng.randint(1950, 2049), rng.randint(1, 12)
        day = rng.randint(1, calendar.monthrange(year, month)[1])
        iso = f"{year:04d}-{month:02d}-{day:02d}"
        if iso in seen:
            continue
        seen.add(iso)
        examples.append(dspy.Example(date_text=_spell(rng, year, month, day), iso_date=iso).with_inputs("date_text"))
    a, b = sizes[0], sizes[0] + sizes[1]
    return {"train": examples[:a], "val": examples[a:b], "test": examples[b:]}


def iso_exact(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
    """Return True when the prediction is exactly the expected `YYYY-MM-DD` (surrounding spaces aside)."""
    answer = str(getattr(prediction, "iso_date", "") or "").strip()
    return bool(_ISO.match(answer)) and answer == example.iso_date


def program() -> dspy.Module:
    """Return a fresh, un-optimized date normalizer."""
    return dspy.Predict(NormalizeDate)


class OracleEngine:
    """A dspy engine that answers this task from the data set's labels, in ChatAdapter's format.

    It is the teacher for distillation (`BootstrapFinetune(teacher=...)`): the traces it produces are
    the dspy-formatted training examples a stronger model would give, with no API key.
    """

    _FIELD = re.compile(r"\[\[ ## date_text ## \]\]\n(.*?)(?:\n\n|\Z)", re.S)

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def complete(self, request: Any) -> Any:
        """Answer one ChatAdapter request (an unknown date gets `unknown`)."""
        from dspy.lm15 import Message, Response, TextPart, Usage

        last = request.messages[-1].text or "" if request.messages else ""
        match = self._FIELD.search(last)
        answer = self.answers.get(match.group(1).strip(), "unknown") if match else "unknown"
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant([TextPart(f"[[ ## iso_date ## ]]\n{answer}\n\n[[ ## completed ## ]]\n")]),
            finish_reason="stop",
            usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
        )


def oracle_lm(examples: list[dspy.Example]) -> dspy.LM:
    """Return an LM that answers the dates in `examples` correctly (a teacher for distillation)."""
    answers = {ex.date_text: ex.iso_date for ex in examples}
    return dspy.LM("oracle/iso-date", engine=OracleEngine(answers), cache=False)


def teacher(examples: list[dspy.Example]) -> dspy.Module:
    """Return the task's program with the oracle LM set, for `BootstrapFinetune(teacher=...)`."""
    module = program()
    module.set_lm(oracle_lm(examples))
    return module
