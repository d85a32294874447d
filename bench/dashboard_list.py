"""`python -m bench.dashboard_list [COUNT ...]`: the dashboard's jobs list over many seeded jobs.

Seeds COUNT jobs (default 2,000) in the real key layout into Redis database 14 of `BTQ_BENCH_REDIS`, then
times the list's index: the cold fill (once per dashboard process), then warm pages (first page, a
search, a filter sorted by score). CPU time of this process is printed beside wall time: on a loaded
machine wall time says more about the neighbours than about the code.
"""

import sys
import time

from bench.dashboard_seed import seed_jobs
from bench.redis_dbs import connect, flush
from btq.producer.dashboard.job_list import JobList
from btq.producer.dashboard.list_query import ListQuery

DB_DASHBOARD = 14
DEFAULT_COUNTS = (2000,)


def _timed(label: str, jobs: JobList, query: ListQuery) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    page = jobs.page(query)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {label:<34} {1000 * wall:8.1f} ms wall {1000 * cpu:8.1f} ms cpu  total {page['total']}")


def run(count: int) -> None:
    """Seed `count` jobs, then time a cold fill and warm pages of the list."""
    flush(DB_DASHBOARD)
    store = connect(DB_DASHBOARD)
    try:
        seed_jobs(store, count)
        print(f"{count} jobs, {store.info('memory')['used_memory_human']} in Redis")
        jobs = JobList(store, fresh_s=0)  # every page refreshes: the worst case of a busy fleet
        _timed("cold fill + first page", jobs, ListQuery())
        for _ in range(3):
            _timed("warm first page", jobs, ListQuery())
        _timed("search 'p -> w'", jobs, ListQuery(q="p -> w"))
        _timed("succeeded, by best score", jobs, ListQuery(state="succeeded", sort="best"))
        _timed("last page", jobs, ListQuery(page=max(1, count // 50)))
    finally:
        store.close()
        flush(DB_DASHBOARD)


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or DEFAULT_COUNTS:
        run(n)
