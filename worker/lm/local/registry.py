"""Registry entries of the local backend; list `btq.worker.lm.local.registry` in the worker's `imports` setting.

- LM `local.smollm2`: SmolLM2-135M-Instruct served by llama.cpp on this worker, fine-tunable on CPU,
  fine-tunes published in (and served from) the worker's artifact store.
- Program `local.catalog`, metric `local.catalog_exact`, dataset `local.authors`: the demo task, writing
  a sentence's author as a library catalog lists them (see `btq.worker.lm.local.tasks.catalog`).
- Program `local.travel`, metric `local.destination_exact`, dataset `local.trips`: naming the city a
  traveller went to (see `btq.worker.lm.local.tasks.travel`).
- Program `local.iso_date`, metric `local.iso_exact`, dataset `local.dates`: a strict-format task the
  model starts weak at and learns (see `btq.worker.lm.local.tasks.dates`); program `local.iso_date.teacher`, the
  same program answering from the training labels, for a job's `teacher`.
- Program `local.iris`, metric `local.iris_exact`, datasets `local.iris` and `local.iris.seed<N>` (N 0-9):
  the BetterTogether paper's Iris task on Fisher's data as scikit-learn ships it, split 50/50/50 by seed
  (see `btq.worker.lm.local.tasks.iris`).

Importing this module needs no model or extra; building the LM needs the `local` extra
(scripts/install-local.sh) when it first serves or trains.
"""

import functools
from typing import Any

import dspy

from btq.worker.core.progress import report
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.lm.local.models import PREFIX
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.tasks import catalog, iris, travel
from btq.worker.lm.local.tasks.dates import date_splits, iso_exact, program, teacher

SMOLLM2 = f"{PREFIX}smollm2-135m-instruct"


def report_finetune_progress(event: dict[str, Any]) -> None:
    """Forward a fine-tune progress event as the running step's `step.progress` (phase `finetune`).

    The provider's own `phase` (load, train, convert) becomes `stage`, so `phase` stays the report's kind.
    """
    detail = dict(event)
    stage = detail.pop("phase", None)
    if stage is not None:
        detail["stage"] = stage
    report(phase="finetune", **detail)


def smollm2_lm(resources: WorkerResources) -> dspy.BaseLM:
    """Return the `local.smollm2` LM: greedy decoding, fine-tunes kept in `resources.artifacts`.

    Fine-tuning progress (step, loss, ...) is reported as the running step's progress events.
    """
    provider = LlamaCppProvider(resources.artifacts, on_progress=report_finetune_progress)
    return provider.lm(
        SMOLLM2,
        temperature=0.0,
        # Answers of these tasks are one short field. The 135M model writes the field, then a blank line
        # and often a broken `[## completed ## ]` marker with more text, which ChatAdapter would keep as
        # part of the answer; a blank line ends the answer instead (and a ramble, much sooner than the cap),
        # and so does a line starting with "[" (the same broken marker, one newline after the answer).
        max_tokens=64,
        stop=["\n\n", "\n["],
        # Greedy decoding answers a request the same way every time, and the engine's state names the
        # weights' version: calls are safe to share through the fleet's LM-call cache (jobs of one
        # comparison share their common steps).
        cache=True,
    )


def register(registry: Registry) -> None:
    """Register the local LM and the catalog-entry, trip-destination, ISO-date and Iris tasks."""
    registry.lm("local.smollm2", smollm2_lm)
    registry.program("local.catalog", catalog.program)
    registry.metric("local.catalog_exact", catalog.catalog_exact)
    registry.dataset("local.authors", catalog.author_splits)
    registry.program("local.travel", travel.program)
    registry.metric("local.destination_exact", travel.destination_exact)
    registry.dataset("local.trips", travel.trip_splits)
    registry.program("local.iso_date", program)
    registry.metric("local.iso_exact", iso_exact)
    registry.dataset("local.dates", date_splits)
    # The teacher answers from the training labels (an oracle): the traces a stronger model would give,
    # with no API key. Name it as a job's `teacher` to bootstrap demos and fine-tuning data from it.
    registry.program("local.iso_date.teacher", lambda: teacher(date_splits()["train"]))
    registry.program("local.iris", iris.program)
    registry.metric("local.iris_exact", iris.species_exact)
    registry.dataset("local.iris", iris.iris_splits)
    for seed in iris.SEEDS:
        registry.dataset(iris.dataset_name(seed), functools.partial(iris.iris_splits, seed))
