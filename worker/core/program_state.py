"""Programs to and from JSON: registered factory + `Module.dump_state()`, LMs rebuilt, never imported."""

import copy
from typing import Any

import dspy

from btq.schemas.exceptions import ProgramStateError
from btq.worker.core.lm_binding import LMBinder


def dump_program(program: dspy.Module) -> dict[str, Any]:
    """Return the program's JSON state (demos, instructions, each predictor's LM)."""
    state: dict[str, Any] = program.dump_state(json_mode=True)
    return state


def load_program(program: dspy.Module, state: dict[str, Any], binder: LMBinder | None) -> dspy.Module:
    """Load `state` into a fresh `program` from its factory and return it.

    LM entries are stripped before dspy's loader sees them (so it imports nothing) and rebuilt by
    `binder`; with no binder predictors keep no LM. Demos come back from JSON as dicts and are turned
    into `dspy.Example`s, as the optimizers produced them.
    """
    # A bare Predict saves its own state; a composite module saves one entry per predictor name.
    single = isinstance(program, dspy.Predict)
    stripped = copy.deepcopy({"self": state} if single else state)
    names = [name for name, _ in program.named_predictors()]
    missing = [name for name in names if not isinstance(stripped.get(name), dict)]
    if missing:
        raise ProgramStateError(f"program state has no entry for predictors {missing} (has {sorted(state)})")
    lm_states = {}
    for name in names:
        lm_states[name] = stripped[name].get("lm")
        stripped[name]["lm"] = None
    try:
        program.load_state(stripped["self"] if single else stripped)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProgramStateError(f"program state does not fit the registered program: {exc}") from exc
    for name, predictor in program.named_predictors():
        predictor.demos = [dspy.Example(**d) if isinstance(d, dict) else d for d in predictor.demos]
        predictor.lm = binder.lm_for(lm_states[name]) if binder is not None else None
    return program
