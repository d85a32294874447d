"""Blocking pops as every party makes them: the reply is awaited past the block, whatever the socket timeout.

redis-py reads every reply under the client's `socket_timeout` (5 s by default in current redis-py, or
what the URL says in `?socket_timeout=`). A BLPOP that blocks for longer than that, or nearly as long while a
loaded machine delays Redis's reply, raises TimeoutError although nothing is wrong. Here the pop is sent
on a connection of the client's pool and its reply awaited for the block time plus a margin of its own;
only a reply that much late means Redis is gone.
"""

from typing import cast

import redis

MIN_BLOCK_S = 0.01
"""The shortest block sent: Redis reads a BLPOP timeout of 0 as "wait forever"."""

REPLY_MARGIN_S = 30.0
"""How long after the block ends a reply may still come (at least the client's own socket timeout)."""


def blpop(client: redis.Redis, key: str, timeout_s: float) -> bytes | None:
    """Pop the head of list `key`, waiting up to `timeout_s` for one to come; None if none came.

    Raises redis.TimeoutError only when no reply came `REPLY_MARGIN_S` (or the client's socket timeout,
    if longer) after the block ended, and redis.ConnectionError as the client would.
    """
    block_s = max(MIN_BLOCK_S, timeout_s)
    pool = client.connection_pool
    conn = client.connection or pool.get_connection()  # a single-connection client keeps its one
    try:
        conn.send_command("BLPOP", key, block_s)  # type: ignore[no-untyped-call]
        margin_s = max(REPLY_MARGIN_S, conn.socket_timeout or 0.0)
        # The wait is this call's, not the socket's: can_read polls under the timeout it is given.
        if not conn.can_read(timeout=block_s + margin_s):
            raise redis.TimeoutError(f"no reply to a {block_s:g} s BLPOP of {key} within {block_s + margin_s:g} s")
        reply = conn.read_response()
    except BaseException:
        # A reply may still be on its way: the connection must not serve another command.
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        if conn is not client.connection:
            pool.release(conn)
    return None if reply is None else cast(bytes, reply[1])
