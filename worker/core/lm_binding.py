"""Build the job's LM and re-attach LMs to predictors from their saved state.

A saved predictor LM (`LM.dump_state()`) carries the model name (a fine-tuned one too) and kwargs, but
no provider, engine or credentials. It is never loaded with dspy's class-importing loader: it is
rebuilt from the job's LM, the one thing a message may name, with only the changed settings applied.
"""

import json
from typing import Any

import dspy

from btq.schemas.exceptions import ProgramStateError
from btq.schemas.job import SECRET_LM_KEYS, LiteLLMSpec
from btq.schemas.secrets import credential_paths
from btq.worker.core.registry import Registry, WorkerResources
from btq.worker.settings import WorkerSettings

_IDENTITY_KEYS = ("_dspy_lm_class", "engine")
"""LM state keys that must equal the job LM's: a message cannot switch LM class or engine."""


def build_job_lm(
    lm: str | LiteLLMSpec, registry: Registry, resources: WorkerResources, settings: WorkerSettings
) -> dspy.BaseLM:
    """Return the job's LM: a registered factory's, or a LiteLLM model with credentials from settings."""
    if isinstance(lm, str):
        built: dspy.BaseLM = registry.get("lms", lm)(resources)
        return built
    if not settings.allow_litellm_models:
        raise ProgramStateError("this fleet only runs registered LMs (settings.allow_litellm_models is off)")
    prefix = lm.model.split("/", 1)[0]
    extra: dict[str, Any] = {}
    if prefix in settings.lm_api_keys:
        extra["api_key"] = settings.lm_api_keys[prefix].get_secret_value()
    if prefix in settings.lm_api_bases:
        extra["api_base"] = settings.lm_api_bases[prefix]
    return dspy.LM(lm.model, **lm.kwargs, **extra)


class LMBinder:
    """Turns saved predictor LM states back into LMs derived from one base LM.

    Predictors whose saved LM states are equal get the same LM object, as they had in the process
    that saved them (BootstrapFinetune groups its fine-tuning jobs by LM object).
    """

    def __init__(self, base: dspy.BaseLM) -> None:
        self.base = base
        self.base_state = base.dump_state()
        self._built: dict[str, dspy.BaseLM] = {}

    def lm_for(self, state: dict[str, Any] | None) -> dspy.BaseLM | None:
        """Return the LM for one saved state (None stays None)."""
        if state is None:
            return None
        key = json.dumps(state, sort_keys=True, default=str)
        if key not in self._built:
            self._built[key] = self._rebuild(state)
        return self._built[key]

    def _rebuild(self, state: dict[str, Any]) -> dspy.BaseLM:
        for ident in _IDENTITY_KEYS:
            if state.get(ident) != self.base_state.get(ident):
                raise ProgramStateError(
                    f"saved LM {ident} {state.get(ident)!r} differs from the job LM's {self.base_state.get(ident)!r}"
                )
        changed = {k: v for k, v in state.items() if k not in _IDENTITY_KEYS and self.base_state.get(k) != v}
        refused = sorted(SECRET_LM_KEYS.intersection(changed) | {p for p, _ in credential_paths(changed)})
        if refused:
            raise ProgramStateError(f"saved LM state may not set {refused}")
        lm = self.base.copy(**changed) if changed else self.base
        if lm.dump_state() != {**self.base_state, **changed}:
            raise ProgramStateError(f"saved LM state could not be reproduced for model {state.get('model')!r}")
        return lm
