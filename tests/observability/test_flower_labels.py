"""Flower and `celery events`: a task's event names its job, step and strategy (the message's argsrepr)."""

import threading
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.test_parity import spec
from tests.observability.conftest import ObservedFleet

pytestmark = pytest.mark.integration


def test_task_received_events_carry_a_readable_label(observed: ObservedFleet) -> None:
    app = observed.client.celery
    received: list[dict[str, Any]] = []
    heard: list[dict[str, Any]] = []
    stop = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        heard.append(event)
        if event.get("type") == "task-received":
            received.append(event)

    def listen() -> None:
        # A real event receiver, as Flower and `celery events` run it, on the fleet's broker.
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": on_event})
            while not stop.is_set():
                try:
                    receiver.capture(limit=None, timeout=1, wakeup=False)
                except TimeoutError:
                    continue

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        # Listening: the workers' heartbeats (every 2 s with task events on) arrive.
        wait_until(lambda: heard, 15, "a worker heartbeat on the event receiver")
        job_id = observed.client.submit(spec("p -> p", "given", False, 13))
        observed.client.wait(job_id, timeout_s=120)
        short = job_id[:8]
        expected = {f"job {short} step 0/2 baseline", f"job {short} step 1/2 p", f"job {short} step 2/2 p -> p"}

        def labels() -> set[str]:
            return {e["args"] for e in received if e.get("name") == "btq.step"}

        wait_until(lambda: expected <= labels(), 15, f"labelled step events, got {labels()}")
        assert any(e["args"] == f"job {short} finalize p -> p" for e in received if e.get("name") == "btq.finalize")
        shards = [e["args"] for e in received if e.get("name") == "btq.shard"]
        assert shards and all(a.startswith(f"job {short} shards of evaluation ") for a in shards)
    finally:
        stop.set()
        thread.join(timeout=10)
