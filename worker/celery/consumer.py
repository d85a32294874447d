"""A Celery consumer that no task message can kill, on any broker.

Celery handles a message it cannot decode or does not know (it logs and acks or rejects it), but some
wrongly shaped messages raise from its handler in the worker's main process instead: a `task` header
with no `id`, headers of the wrong types, a body that is not a list of args, kwargs and options. Such
a message is moved to the dead-letter list and removed from the queue; the worker serves the next one.
Messages Celery already refuses by design (pickle, YAML, unregistered task names) keep that path.
"""

from collections.abc import Callable
from typing import Any

import redis
from celery import signals
from celery.worker.consumer import Consumer
from kombu.message import Message

from btq.worker.state.dead_letter import DeadLetterBox

TaskHandler = Callable[[Message], Any]


class PoisonProofConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer with every task message handled inside a guard that dead-letters failures."""

    def create_task_handler(self, *args: Any, **kwargs: Any) -> TaskHandler:
        """Return Celery's handler wrapped so that an error reading a message never reaches the loop."""
        handler: TaskHandler = super().create_task_handler(*args, **kwargs)
        passthrough = tuple(self.connection_errors) + tuple(self.channel_errors)

        def on_task_received(message: Message) -> Any:
            try:
                return handler(message)
            except passthrough:
                raise  # the connection's own errors drive reconnection: not the message's fault
            except Exception as exc:
                self.dead_letter(message, f"unreadable task message ({type(exc).__name__}: {exc})")
                return None

        return on_task_received

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """Dead-letter an undecodable body (instead of Celery's log line and ack: logged once, by us)."""
        self.dead_letter(message, f"undecodable body ({type(exc).__name__}: {exc})")

    def on_unknown_message(self, body: Any, message: Message) -> None:
        """Dead-letter a message that is not a task message (instead of Celery's warning and reject)."""
        self.dead_letter(message, "not a task message")
        signals.task_rejected.send(sender=self, message=message, exc=None)

    def dead_letter(self, message: Message, reason: str) -> None:
        """Keep `message` in the dead-letter list and take it off the queue for good."""
        self._keep(message, reason)
        if not message.acknowledged:
            # requeue=False: RabbitMQ hands it to the queue's dead-letter exchange if one is set.
            message.reject(requeue=False)  # type: ignore[no-untyped-call]

    def _keep(self, message: Message, reason: str) -> None:
        body = message.body
        raw = body if isinstance(body, (bytes, str)) else repr(body)
        queue = str((message.delivery_info or {}).get("routing_key") or "")
        self._dead_letters().put(raw, reason, queue)

    def _dead_letters(self) -> DeadLetterBox:
        box: DeadLetterBox | None = getattr(self, "_btq_dead_letters", None)
        if box is None:
            settings = self.app.btq_runtime.settings
            box = DeadLetterBox(redis.Redis.from_url(settings.redis_url), settings.dead_letter_maxlen)
            self._btq_dead_letters = box
        return box
