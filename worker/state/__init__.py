"""Redis state: the job store, events, step leases, the fleet heartbeat, the LM cache, dead letters,
LM usage counters with the budget gate (`spend`, `fleet_gate`) and the fleet's rate limits (`rate_limit`).

Every Redis key is named in `btq.schemas.keys`. May import `core` and `artifacts`; imports no Celery.
"""
