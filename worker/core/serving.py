"""A finished job's candidate as a working `dspy.Module`: built by the registry, LMs bound and launched.

What `JobClient.program` returns: the registered program loaded with the candidate's state the way a
worker loads it (LM entries rebuilt from the job's LM, never imported from the state), then each LM
launched, so a local fine-tune's adapter is fetched from the artifact store and served.
"""

from typing import Any

import dspy
from dspy.teleprompt.bootstrap_finetune import launch_lms

from btq.schemas.job import JobSpec
from btq.worker.artifacts.store import store_from_url
from btq.worker.core.lm_binding import LMBinder, build_job_lm
from btq.worker.core.program_state import load_program
from btq.worker.core.registry import Registry, WorkerResources, load_registry
from btq.worker.settings import WorkerSettings


def serving_program(
    spec: JobSpec,
    state: dict[str, Any],
    settings: WorkerSettings | None = None,
    registry: Registry | None = None,
) -> dspy.Module:
    """Return the program `spec` registers, loaded with `state`, with working LMs.

    Args:
        spec: the job's spec: its registered program and its LM.
        state: a candidate's `program_state` (or the document of an exported program file).
        settings: where the registry modules, artifact store and credentials come from (default: the
            `BTQ_` environment, as a worker reads it).
        registry: the registry to build from (default: `settings.imports` loaded, as a worker does).

    Raises:
        RegistryError: the program or LM is not registered here.
        ProgramStateError: the state does not fit the program, or names an LM the job's LM cannot become.
    """
    settings = settings or WorkerSettings()
    registry = registry or load_registry(settings.imports)
    resources = WorkerResources(
        artifacts=store_from_url(settings.artifact_dir),
        secrets={k: v.get_secret_value() for k, v in settings.lm_api_keys.items()},
    )
    lm = build_job_lm(spec.lm, registry, resources, settings)
    body = {k: v for k, v in state.items() if k != "metadata"}  # dspy's file adds it; it is not a predictor
    program = load_program(registry.get("programs", spec.program.name)(), body, LMBinder(lm))
    launch_lms(program)
    return program
