"""The producer: submit, watch and read jobs; never imports worker code (it enqueues by task name).

- `client`: `JobClient`, the API a service uses; `settings`: the producer's settings.
- `fleet/`: the live fleet as a producer sees it: manifests, routing, validation, liveness, worker commands.
- `intake`: jobs submitted by services in any language, as entries on a Redis Stream.
- `terminal/`: live progress bars and tables; `dashboard/`: the web dashboard.
- `demo/`: `btq demo` and `btq compare`: end-to-end runs on this machine.
- `cli/`: the `btq` command.
"""

# Installed as `btq.producer` only (pyproject.toml maps the folder). Imported under its bare name from
# a checkout, it becomes an alias of `btq.producer` (one copy of every module), with a DeprecationWarning.
if __name__ != "btq.producer":
    from btq.schemas.checkout_alias import alias_bare_package

    alias_bare_package(__name__, "btq.producer")
else:
    from btq.schemas.checkout_alias import alias_moved_modules

    # Where each module of the former flat layout lives now (the old paths keep working).
    MOVED = {
        "compare_command": "btq.producer.cli.compare_command",
        "jobs_table": "btq.producer.cli.jobs_table",
        "workers": "btq.producer.cli.workers",
        "demo_jobs": "btq.producer.demo.jobs",
        "compare": "btq.producer.demo.compare",
        "chart": "btq.producer.demo.chart",
        "render": "btq.producer.terminal.render",
        "live_bars": "btq.producer.terminal.live_bars",
        "validation": "btq.producer.fleet.validation",
        "liveness": "btq.producer.fleet.liveness",
        "worker_command": "btq.producer.fleet.worker_command",
    }
    alias_moved_modules(__name__, MOVED)
