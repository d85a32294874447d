"""Redis state: the job store, events, step leases, the fleet heartbeat, the LM cache, dead letters.

Every Redis key is named in `btq.schemas.keys`. May import `core` and `artifacts`; imports no Celery.
"""
