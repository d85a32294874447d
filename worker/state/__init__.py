"""Redis state: job store, events, step leases, fleet heartbeat, LM cache, LM spending, rate limits.

Also dead letters; LM usage counters with the budget gate live in `spend` and `fleet_gate`, the fleet's
rate limits in `rate_limit`. Every Redis key is named in `btq.schemas.keys`. May import `core` and
`artifacts`; imports no Celery.
"""
