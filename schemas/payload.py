"""Checks on a raw job payload before its fields are parsed: no NaN or Infinity, no smuggled credentials.

They run on the JSON as sent, so an error names the full dotted path of the offending value.
"""

from collections.abc import Iterator
from typing import Any

from btq.schemas.finite import non_finite_paths
from btq.schemas.secrets import credential_paths

LM_IDENTITY_KEYS = frozenset({"engine", "_dspy_lm_class"})
"""Keys of a saved LM state (`dspy.LM.dump_state()`) naming the LM's class and engine. A program state
saved by dspy, a job result's own included, carries them; a worker accepts them only when they equal its
job LM's and never imports what they name, so they are not refused as endpoints here (the engine's own
saved state still is checked for credentials)."""

EXAMPLE_ARGS = frozenset({"trainset", "valset"})
"""Compile args holding examples: data, whose field names are the user's business."""


def payload_error(data: Any) -> str | None:
    """Return `"<field path>: <reason>"` for the first refused value in a raw job, or None."""
    if not isinstance(data, dict):
        return None
    for path in non_finite_paths(data):
        return f"{path}: NaN and Infinity are not allowed (JSON has no such numbers)"
    for path, reason in _credentials(data):
        return f"{path}: {reason}"
    return None


def _credentials(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    lm = data.get("lm")
    if isinstance(lm, dict):
        yield from credential_paths({k: v for k, v in lm.items() if k != "model"}, "lm")
    optimizers = data.get("optimizers")
    if isinstance(optimizers, dict):
        for key, opt in optimizers.items():
            if isinstance(opt, dict):
                yield from credential_paths(opt.get("kwargs"), f"optimizers.{key}.kwargs")
    compile_args = data.get("optimizer_compile_args")
    if isinstance(compile_args, dict):
        for key, args in compile_args.items():
            if isinstance(args, dict):
                rest = {k: v for k, v in args.items() if k not in EXAMPLE_ARGS and k != "teacher"}
                yield from credential_paths(rest, f"optimizer_compile_args.{key}")
                yield from _teachers(args.get("teacher"), f"optimizer_compile_args.{key}.teacher")
    yield from _program_lms(data.get("program"), "program")
    yield from _teachers(data.get("teacher"), "teacher")


def _teachers(teacher: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield refused keys of one teacher reference or a list of them."""
    if isinstance(teacher, list):
        for i, ref in enumerate(teacher):
            yield from _program_lms(ref, f"{path}.{i}")
    else:
        yield from _program_lms(teacher, path)


def _program_lms(ref: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield refused keys in the saved LM states of a program reference (demos are data, not checked)."""
    state = ref.get("state") if isinstance(ref, dict) else None
    if not isinstance(state, dict):
        return
    # A bare Predict saves its own entries; a composite module saves one dict per predictor name.
    entries = [("", state)] + [(f"{name}.", v) for name, v in state.items() if isinstance(v, dict)]
    for prefix, entry in entries:
        lm = entry.get("lm")
        if isinstance(lm, dict):
            at = f"{path}.state.{prefix}lm"
            yield from credential_paths({k: v for k, v in lm.items() if k not in LM_IDENTITY_KEYS}, at)
            engine = lm.get("engine")
            if isinstance(engine, dict):  # a custom engine: {"class": "module:Name", "state": {...}}
                yield from credential_paths(engine, f"{at}.engine")
