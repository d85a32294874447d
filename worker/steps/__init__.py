"""One step task around the core: idempotent, redelivery-capped, guarded, recorded, redacted.

The step service loads the job, runs the core's step runner with sharded evaluation, writes the write-once
record and emits events; the finalizer ranks, stores the result and emits the terminal event once; escaped exceptions become recorded outcomes. May import `sharding`, `state`,
`lm`, `core`, `artifacts`; imports no Celery.
"""
