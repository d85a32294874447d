"""Sharded evaluation: every `dspy.Evaluate` inside a step cut into shards the whole fleet scores.

The plan (can this call be sharded, described by reference), the board in Redis (shards to claim, leases,
results), the step's evaluator (publish, work, take over lost shards, combine), the fleet's shard runner,
and per-example outcomes as JSON. May import `state`, `lm`, `core`, `artifacts`; imports no Celery.
"""
