"""`btq compare --task iris`: the BetterTogether paper's Iris experiment on the local model, N seeds at once.

Each seed is one `btq compare` (one job per strategy on that seed's 50/50/50 split of Fisher's iris data,
worker dataset `local.iris.seed<N>`); the seeds run concurrently on the fleet. The table gives, per
strategy, the mean and spread of the final programs' held-out test scores over the seeds, the mean wall
time, and the paper's Table 1 figures beside them (arXiv 2407.10930, Soylu, Potts, Khattab, mean of 3
seeds; the figures as read from the paper's HTML by a third party).

The producer only names the worker's registered task; the data is loaded on the workers.
"""

import json
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from btq.producer.client import JobClient
from btq.producer.demo.compare import BASELINE, DEFAULT_STRATEGIES, Comparison, run_comparison
from btq.schemas.job import JobSpec

PAPER_MODELS = ("Mistral-7B", "Llama-2-7B", "Llama-3-8B")
PAPER_TABLE: dict[str, tuple[float | None, float | None, float | None]] = {
    BASELINE: (26.0, 0.0, 48.0),
    "p": (57.3, 56.7, 79.3),
    "w": (29.3, None, 37.3),
    "p -> w": (30.7, 26.7, 44.0),
    "w -> p": (66.7, None, 78.7),
    "p -> w -> p": (52.7, 65.3, 79.3),
}
"""Table 1 of arXiv 2407.10930 (Iris, test accuracy %, mean of 3 seeds), as read from the paper's HTML by a
third party; `None` where the paper reports no figure."""

PAPER_SOURCE = "arXiv 2407.10930, Table 1 (Iris), figures as read from the paper's HTML by a third party"

DEFAULT_SEEDS = 3

PAPER_LEARNING_RATE = 1e-5
SMALL_MODEL_LEARNING_RATE = 2e-4
"""The paper's LoRA learning rate (for 7-8B models) leaves a 135M model's adapter where it started over the
few steps 5 epochs of ~50 examples give; see docs/iris.md for the measurement."""


PAPER_CANDIDATES = 6
"""BootstrapFewShotWithRandomSearch's `num_candidate_programs` in the paper (plus dspy's 3 fixed ones)."""


def iris_spec(
    seed: int, learning_rate: float = SMALL_MODEL_LEARNING_RATE, candidates: int = PAPER_CANDIDATES
) -> dict[str, Any]:
    """Return the paper's Iris job for `seed`: its split, its optimizer settings, the LM teaching itself.

    Prompt optimization sees 15 train / 35 validation examples (both from the 50 train examples),
    BootstrapFewShotWithRandomSearch with 6 candidates and up to 3 demos; BootstrapFinetune trains LoRA
    rank 32, alpha 64, 5 epochs, batch 8 on the whole train split; BetterTogether scores every step on the
    50 val examples. Only the learning rate differs from the paper by default (see SMALL_MODEL_LEARNING_RATE);
    `candidates` trades the random search's breadth for time.
    """
    dataset = f"local.iris.seed{seed}"
    return {
        "program": {"name": "local.iris"},
        "lm": "local.smollm2",
        "metric": "local.iris_exact",
        "optimizers": {
            "p": {
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "kwargs": {
                    "num_candidate_programs": candidates,
                    "max_bootstrapped_demos": 3,
                    "max_labeled_demos": 3,
                    "num_threads": 1,
                },
            },
            "w": {
                "optimizer": "BootstrapFinetune",
                "kwargs": {
                    "num_threads": 1,
                    "train_kwargs": {
                        "method": "lora",
                        "lora_r": 32,
                        "lora_alpha": 64,
                        "epochs": 5,
                        "batch_size": 8,
                        "learning_rate": learning_rate,
                        # Epochs bound the run, as in the paper (the provider's default step cap is 30).
                        "max_steps": 1000,
                        "seed": seed,
                    },
                },
            },
        },
        "strategy": "p -> w -> p",
        "trainset": {"dataset": dataset, "split": "train"},
        "valset": {"dataset": dataset, "split": "val"},
        "optimizer_compile_args": {
            "p": {
                "trainset": {"dataset": dataset, "split": "prompt_train"},
                "valset": {"dataset": dataset, "split": "prompt_val"},
            }
        },
        # The paper's setting: after `w`, the fine-tuned model bootstraps and scores the demos it will run.
        "prompt_steps_use_student_lm": True,
        "num_threads": 1,
        "seed": seed,
    }


@dataclass
class IrisRow:
    """One strategy over all seeds: test scores per seed, their mean and spread, mean wall time."""

    strategy: str
    test: list[float | None]
    mean: float | None
    stdev: float | None
    wall_s: float | None
    paper: tuple[float | None, float | None, float | None] | None


@dataclass
class IrisComparison:
    """The comparisons of every seed and the table over them."""

    seeds: list[int]
    comparisons: list[Comparison]
    rows: list[IrisRow] = field(default_factory=list)
    wall_s: float = 0.0
    paper_source: str = PAPER_SOURCE
    paper_models: tuple[str, ...] = PAPER_MODELS


class _RecordingClient(JobClient):
    """A JobClient that remembers the jobs it submitted, so an interrupted run can cancel all of them."""

    def __init__(self, client: JobClient) -> None:
        super().__init__(client.settings, client.redis)
        self.submitted: list[str] = []
        self._ids_lock = threading.Lock()

    def submit(self, data: JobSpec | dict[str, Any] | str | bytes, **kwargs: Any) -> str:
        job_id = super().submit(data, **kwargs)
        with self._ids_lock:
            self.submitted.append(job_id)
        return job_id


def _rows(seeds: Sequence[int], comparisons: Sequence[Comparison], strategies: Sequence[str]) -> list[IrisRow]:
    def row(strategy: str, tests: list[float | None], walls: list[float]) -> IrisRow:
        known = [t for t in tests if t is not None]
        return IrisRow(
            strategy=strategy,
            test=tests,
            mean=round(statistics.fmean(known), 1) if known else None,
            stdev=round(statistics.stdev(known), 1) if len(known) > 1 else None,
            wall_s=round(statistics.fmean(walls), 1) if walls else None,
            paper=PAPER_TABLE.get(strategy),
        )

    rows = [row(BASELINE, [c.baseline_test for c in comparisons], [])]
    for i, strategy in enumerate(strategies):
        runs = [c.runs[i] for c in comparisons]
        rows.append(row(strategy, [r.test for r in runs], [r.wall_s for r in runs]))
    return rows


def run_iris(
    client: JobClient,
    seeds: Sequence[int],
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    timeout_s: float = 3600.0,
    learning_rate: float = SMALL_MODEL_LEARNING_RATE,
    candidates: int = PAPER_CANDIDATES,
) -> IrisComparison:
    """Run one comparison per seed, all at once on the fleet; return them and the table over the seeds.

    If it raises (a timeout, Ctrl-C), every job any seed submitted is cancelled first.
    """
    began = time.time()
    recording = _RecordingClient(client)
    pool = ThreadPoolExecutor(max_workers=len(seeds))
    try:
        futures = [
            pool.submit(
                run_comparison,
                recording,
                iris_spec(seed, learning_rate, candidates),
                (f"local.iris.seed{seed}", "test"),
                strategies,
                timeout_s,
            )
            for seed in seeds
        ]
        comparisons = [f.result() for f in futures]
    except BaseException:
        for job_id in list(recording.submitted):  # best effort: the run is failing anyway
            with suppress(Exception):
                client.cancel(job_id)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return IrisComparison(
        seeds=list(seeds),
        comparisons=comparisons,
        rows=_rows(seeds, comparisons, strategies),
        wall_s=round(time.time() - began, 1),
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_iris_table(result: IrisComparison, out: TextIO) -> None:
    """Print test accuracy (mean ± spread over seeds, each seed) and wall time beside the paper's figures."""
    n = len(result.seeds)
    paper = " / ".join(PAPER_MODELS)
    print(f"Iris, SmolLM2-135M, test % exact, {n} seed(s) {result.seeds}; paper: {paper}", file=out)
    print(f"{'strategy':<14} {'mean':>6} {'sd':>5}  {'per seed':<22} {'wall s':>8}   paper", file=out)
    for row in result.rows:
        seeds = ", ".join(_fmt(t) for t in row.test)
        figures = " / ".join(_fmt(p) for p in row.paper) if row.paper else "-"
        print(
            f"{row.strategy:<14} {_fmt(row.mean):>6} {_fmt(row.stdev):>5}  {seeds:<22} {_fmt(row.wall_s):>8}   {figures}",
            file=out,
        )
    print(f"all seeds together: {result.wall_s:.1f}s wall. Paper: {PAPER_SOURCE}.", file=out)


def write_iris_results(result: IrisComparison, directory: Path, name: str) -> Path:
    """Write `<name>.json`: the table, the paper's figures and every seed's comparison."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return path
