"""Prometheus metrics of the fleet, computed at scrape time from Redis (needs the `metrics` extra).

`collector` reads jobs, queues, workers, the intake, dead letters and the workers' counters; `event_tally`
counts steps and jobs from the global event stream; `routes` adds `/metrics`, `/healthz` and `/readyz` to
the dashboard. May import `btq.schemas` and the rest of the producer; never the worker.
"""
