"""The worker: Celery tasks over a plain-Python BetterTogether core, state in Redis, sharded evaluation.

Packages, each importing only those below it (checked by import-linter, `make lint`):

- `celery/`: the Celery side: the app and its tasks, consumer/transport hardening, presence, sweeper, redrive.
- `steps/`: one task around the core: idempotent, redelivery-capped, recorded, secrets redacted.
- `sharding/`: every `dspy.Evaluate` inside a step cut into shards the whole fleet scores.
- `state/`: Redis: job store, events, leases, fleet heartbeat, LM cache, dead letters.
- `lm/`: LM backends: the simulated LM (and the embedded demo task), local llama.cpp + CPU fine-tuning.
- `core/`: what one BetterTogether step does to a program, as plain Python: no Celery, no Redis.
- `artifacts/`: content-addressed artifact names and the shared artifact store.

`main` is the entry point (`celery -A btq.worker.main worker`) and `settings` the worker's settings.
"""

# Installed as `btq.worker` only (pyproject.toml maps the folder). Imported under its bare name from
# a checkout, it becomes an alias of `btq.worker` (one copy of every module), with a DeprecationWarning.
if __name__ != "btq.worker":
    from btq.schemas.checkout_alias import alias_bare_package

    alias_bare_package(__name__, "btq.worker")
else:
    from btq.schemas.checkout_alias import alias_moved_modules

    # Where each module of the former flat layout lives now: user registries and scripts that import the old
    # paths (`btq.worker.registry`, `btq.worker.simulated`, `btq.worker.local.registry`) keep working.
    MOVED = {
        "app": "btq.worker.celery.app",
        "broker": "btq.worker.celery.broker",
        "consumer": "btq.worker.celery.consumer",
        "transport": "btq.worker.celery.transport",
        "presence": "btq.worker.celery.presence",
        "redrive": "btq.worker.celery.redrive",
        "sweeper": "btq.worker.celery.sweeper",
        "runtime": "btq.worker.celery.runtime",
        "service": "btq.worker.steps.service",
        "guards": "btq.worker.steps.guards",
        "escaped": "btq.worker.steps.escaped",
        "records": "btq.worker.steps.records",
        "redaction": "btq.worker.steps.redaction",
        "evaluate_hook": "btq.worker.sharding.hook",
        "shard_plan": "btq.worker.sharding.plan",
        "shard_board": "btq.worker.sharding.board",
        "sharded_eval": "btq.worker.sharding.evaluator",
        "shard_runner": "btq.worker.sharding.runner",
        "example_eval": "btq.worker.sharding.examples",
        "outcome_codec": "btq.worker.sharding.outcomes",
        "store": "btq.worker.state.store",
        "events": "btq.worker.state.events",
        "lease": "btq.worker.state.lease",
        "fleet": "btq.worker.state.fleet",
        "lm_cache": "btq.worker.state.lm_cache",
        "dead_letter": "btq.worker.state.dead_letter",
        "infra": "btq.worker.state.infra",
        "registry": "btq.worker.core.registry",
        "job_inputs": "btq.worker.core.job_inputs",
        "optimizers": "btq.worker.core.optimizers",
        "lm_binding": "btq.worker.core.lm_binding",
        "program_state": "btq.worker.core.program_state",
        "student_lm": "btq.worker.core.student_lm",
        "runner": "btq.worker.core.runner",
        "evaluation": "btq.worker.core.valset",
        "ranking": "btq.worker.core.ranking",
        "held_out": "btq.worker.core.held_out",
        "interrupt": "btq.worker.core.interrupt",
        "progress": "btq.worker.core.progress",
        "simulated": "btq.worker.lm.simulated",
        "builtin": "btq.worker.lm.builtin",
        "local": "btq.worker.lm.local",
        "local.finetune": "btq.worker.lm.local.training.finetune",
        "local.train": "btq.worker.lm.local.training.train",
        "local.train_lock": "btq.worker.lm.local.training.lock",
        "local.sft_data": "btq.worker.lm.local.training.sft_data",
        "local.hf_base": "btq.worker.lm.local.training.hf_base",
        "local.convert": "btq.worker.lm.local.training.convert",
        "local.catalog": "btq.worker.lm.local.tasks.catalog",
        "local.travel": "btq.worker.lm.local.tasks.travel",
        "local.task": "btq.worker.lm.local.tasks.dates",
        "local.sentences": "btq.worker.lm.local.tasks.sentences",
    }
    alias_moved_modules(__name__, MOVED)
