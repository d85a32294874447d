"""A kombu Redis transport whose consumers survive any bytes on the queue.

kombu's Redis channel decodes each popped entry with `json.loads` and builds a message from it in the
worker's main process; an entry that is not JSON, not UTF-8, or not a kombu envelope raises there and
kills the worker (celery#4308, kombu#2421). This channel checks every entry first and moves one it
cannot read to the dead-letter list (`btq.schemas.keys.DEAD_LETTERS`) with its raw bytes. The entry is
already popped, so nothing comes back to the queue and no other message is touched.

Registered as the kombu transport `btq-redis`; `broker_url()` rewrites a `redis://` URL to use it.
"""

import base64
import binascii
import json
from queue import Empty
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property

from btq.worker.state.dead_letter import DeadLetterBox

TRANSPORT_ALIAS = "btq-redis"

DEAD_LETTER_OPTIONS = ("btq_dead_letter_url", "btq_dead_letter_maxlen")
"""Transport options naming where dead letters go (the store's Redis) and how many are kept."""


def broker_url(url: str) -> str:
    """Return `url` with our poison-proof transport for `redis://`; other brokers are left as they are."""
    scheme, sep, rest = url.partition("://")
    return f"{TRANSPORT_ALIAS}://{rest}" if sep and scheme == "redis" else url


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def envelope_error(payload: Any) -> str | None:
    """Return why a decoded queue entry is not a kombu message this channel can deliver, or None."""
    if not isinstance(payload, dict):
        kind = "null" if payload is None else _JSON_KINDS.get(type(payload), type(payload).__name__)
        return f"a JSON {kind}, not a message object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no 'properties' object"
    for name in ("content-type", "content-encoding"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            return f"'{name}' is not a string"
    if payload.get("headers") is not None and not isinstance(payload["headers"], dict):
        return "'headers' is not an object"
    return _properties_error(properties) or _body_error(payload.get("body"), properties.get("body_encoding"))


def _properties_error(properties: dict[str, Any]) -> str | None:
    if not isinstance(properties.get("delivery_tag"), str):
        return "no string 'properties.delivery_tag'"
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("exchange", "routing_key")):
        return "no 'properties.delivery_info' with exchange and routing_key"
    return None


def _body_error(body: Any, encoding: Any) -> str | None:
    if body is None:
        return None
    if not isinstance(body, str):
        return "'body' is not a string"
    if encoding is None or (isinstance(encoding, str) and encoding.lower() == "utf-8"):
        return None
    if encoding != "base64":
        return f"unknown body_encoding {encoding!r}"
    try:
        base64.b64decode(body.encode(), validate=True)
    except (binascii.Error, ValueError):
        return "'body' is not valid base64"
    return None


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    """kombu's Redis channel, with entries checked before they are delivered."""

    from_transport_options = kombu_redis.Channel.from_transport_options + DEAD_LETTER_OPTIONS  # type: ignore[assignment]
    btq_dead_letter_url: str | None = None
    btq_dead_letter_maxlen: int = 1000

    @cached_property  # type: ignore[untyped-decorator]
    def dead_letters(self) -> DeadLetterBox:
        """Where unreadable entries go: the store's Redis, or the broker's when none is configured."""
        client = redis.Redis.from_url(self.btq_dead_letter_url) if self.btq_dead_letter_url else self.client
        return DeadLetterBox(client, int(self.btq_dead_letter_maxlen))

    def read_entry(self, item: bytes | str, queue: str) -> dict[str, Any] | None:
        """Return the decoded message in `item`, or None after moving it to the dead-letter list."""
        try:
            payload = json.loads(item.decode() if isinstance(item, bytes) else item)
        except UnicodeDecodeError:
            reason = "not UTF-8"
        except ValueError as exc:
            reason = f"not JSON ({exc.__class__.__name__}: {exc})"
        else:
            reason = envelope_error(payload) or ""
            if not reason:
                return dict(payload)
        self.dead_letters.put(item, reason, queue)
        return None

    def _brpop_read(self, **options: Any) -> bool:
        # kombu's own `_brpop_read` with `loads(...)` replaced by `read_entry`; keep the two in step.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = (dest.decode() if isinstance(dest, bytes) else dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = self.read_entry(item, dest)
            if payload is None:
                raise Empty()
            self.connection._deliver(payload, dest)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))  # type: ignore[no-untyped-call]
                if item:
                    self._maybe_update_queues_expire(client, queue)  # type: ignore[no-untyped-call]
                    payload = self.read_entry(item, queue)
                    if payload is None:
                        raise Empty()
                    return payload
            self._maybe_update_queues_expire(client, queue)  # type: ignore[no-untyped-call]
            raise Empty()

    def _deliver_fanout_message(self, message: Any, exchange: str) -> bool:
        # Broadcast (pidbox, gossip) messages arrive decoded; kombu only guards against undecodable ones.
        reason = envelope_error(message)
        if reason:
            self.dead_letters.put(json.dumps(message).encode(), reason, f"fanout:{exchange}")
            raise Empty()
        delivered: bool = super()._deliver_fanout_message(message, exchange)  # type: ignore[no-untyped-call]
        return delivered


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """kombu's Redis transport with the poison-proof channel."""

    Channel = Channel


TRANSPORT_ALIASES[TRANSPORT_ALIAS] = f"{__name__}:Transport"
