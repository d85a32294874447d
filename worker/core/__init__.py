"""One BetterTogether step as plain Python: what a step does to a program, exactly as dspy does it.

The registry (the only things a message may name), a job spec resolved into dspy objects, optimizers from
JSON, programs and LMs through JSON state, the step runner, valset evaluation, ranking, held-out scores,
cancellation and progress reports from inside a step,
metering of every LM call (`metering`: usage, and the gate a budget or rate limit plugs in). Imports neither Celery nor Redis (checked), only
`artifacts` below it: tested with a deterministic LM and no broker.
"""
