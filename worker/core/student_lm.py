"""The job option `prompt_steps_use_student_lm`: an optimizer step runs with the student's LM as context LM.

Prompt optimizers reset the student's predictors (`Predict.reset()` sets `lm = None`), so they bootstrap
demos and score candidates with `dspy.settings.lm`; `dspy.BetterTogether` puts the student's LMs back only
afterwards. After a `w` step that means the demos are chosen by and for the base model, not the fine-tuned
one that will run them. With the option on, the optimizer call runs inside `dspy.context(lm=<student's LM>)`
(the paper's setting, arXiv 2407.10930: the fine-tuned model teaches itself). Weight optimizers use each
predictor's own LM, so the context changes nothing for them. Off (the default), nothing changes.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dspy

from btq.worker.core.progress import report


def student_lm(student: dspy.Module, fallback: dspy.BaseLM) -> dspy.BaseLM:
    """Return the LM the student's first predictor runs (`fallback` when it has none).

    Predictors share one LM unless a weight step fine-tuned them separately (`multitask=False`); a
    context LM can only be one, so the first predictor's stands for the program.
    """
    for predictor in student.predictors():
        if predictor.lm is not None:
            lm: dspy.BaseLM = predictor.lm
            return lm
    return fallback


@contextmanager
def optimizer_context(enabled: bool, student: dspy.Module, job_lm: dspy.BaseLM) -> Iterator[None]:
    """Run the block with the student's LM as context LM when `enabled`; otherwise leave the context alone.

    When enabled, a `step.progress` event (phase `context_lm`) names the model the optimizer bootstraps and
    scores with, so a user can see a prompt step after `w` use the fine-tuned model.
    """
    if not enabled:
        yield
        return
    lm = student_lm(student, job_lm)
    report(phase="context_lm", model=lm.model)
    with dspy.context(lm=lm):
        yield
