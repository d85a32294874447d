"""The Celery side: the app and its thin task adapters, and what keeps a fleet of them healthy.

The app (JSON only, late acks, capped redelivery), the broker transport and consumer that no message can
kill, the worker's presence (manifest, pool size, queues) with its heartbeat, the sweeper that re-drives steps
whose worker is gone, the canceller that ends cancelled jobs whose steps still wait in the queue, and the per-process runtime that wires the packages below together after fork.
May import every other worker package; nothing in the worker imports it but `btq.worker.main`.
"""
