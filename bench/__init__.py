"""Benchmarks of the distributed BetterTogether queue against real Redis and real Celery workers.

Run with `make bench` (or `python -m bench [--quick]`). Every timing is reported as a ratio or a
difference against a baseline measured in the same run, because the machine is shared and absolute
wall times drift between runs. Nothing here asserts a wall-clock limit.

Modules, one job each:
    config      where Redis is, which databases each section owns, repetition plans
    stats       medians, percentiles and spreads
    redis_dbs   the guard that keeps the bench on databases 10-13
    registry    what the bench workers register (simulated LMs with latency, a tiny dataset)
    jobs        job specs and submit/follow/wait helpers
    inprocess   the in-process `dspy.BetterTogether` baseline
    fleet       spawning, measuring and stopping worker processes
    micro       microbenchmarks of the store and the event emitter
    overhead, scale, events, memory   the four sections
    subscriber  the event subscriber process used by the events section
    report      the printed table and the JSON file
"""
