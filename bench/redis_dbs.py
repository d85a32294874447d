"""Redis access restricted to the bench's databases: the test suite uses the others concurrently."""

import redis

from bench.config import BENCH_DBS, REDIS_HOST


def db_url(db: int) -> str:
    """Return the URL of bench database `db`; refuse any database the bench does not own."""
    if db not in BENCH_DBS:
        raise ValueError(f"the bench may only use Redis databases {BENCH_DBS}, not {db}")
    return f"{REDIS_HOST}/{db}"


def connect(db: int) -> "redis.Redis":
    """Return a client of bench database `db`."""
    return redis.Redis.from_url(db_url(db))


def flush(db: int) -> None:
    """Empty bench database `db` (never any other)."""
    client = connect(db)
    try:
        client.flushdb()
    finally:
        client.close()
