"""The shared LM-call cache: a warm re-run makes no LM call, results never change, values are JSON."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from btq.schemas import keys
from btq.schemas.result import StepRecord
from tests.conftest import Fleet, running_fleet
from tests.fixture_registry import LM_CALLS_KEY
from tests.integration.test_parity import assert_same, spec
from tests.reference import canonical, run_reference

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache_fleet() -> Iterator[Fleet]:
    with running_fleet(9, "btq-cache", ["ca", "cb"]) as fleet:
        yield fleet


def calls(fleet: Fleet) -> int:
    return int(redis.Redis.from_url(fleet.url).get(LM_CALLS_KEY) or 0)


def run(fleet: Fleet, job: dict[str, Any]) -> tuple[list[tuple[str, float | None, str]], int]:
    """Run `job` to its end; return its candidates and the LM calls it made."""
    client = fleet.client()
    before = calls(fleet)
    result = client.wait(client.submit(job), timeout_s=120)
    return [(c.strategy, c.score, canonical(c.program_state)) for c in result.candidates], calls(fleet) - before


def test_warm_rerun_makes_no_lm_call_and_cache_off_makes_them_all(cache_fleet: Fleet) -> None:
    job = spec("p -> w -> p", "given", True, 21, lm="t.counted")

    cold, cold_calls = run(cache_fleet, job)
    warm, warm_calls = run(cache_fleet, job)
    off, off_calls = run(cache_fleet, {**job, "cache": False})

    assert cold_calls > 0
    assert warm_calls == 0
    assert off_calls >= cold_calls  # without the cache, repeated requests inside the job are paid again
    # The cold run is the first job of fresh worker processes: their first, concurrent cache misses
    # must score exactly as in-process dspy does (a failing lookup once scored an example as an error).
    assert cold == run_reference(job).candidates
    assert cold == warm == off


def test_cached_results_equal_in_process_dspy(cache_fleet: Fleet) -> None:
    job = spec("w -> p", "ratio", True, 2, lm="t.counted")
    client = cache_fleet.client()
    first = client.wait(client.submit(job), timeout_s=120)
    again = client.wait(client.submit(job), timeout_s=120)
    assert_same(first, job)
    assert_same(again, job)


def test_cache_values_are_json_with_a_ttl(cache_fleet: Fleet) -> None:
    run(cache_fleet, spec("p", "given", True, 6, lm="t.counted"))
    client = redis.Redis.from_url(cache_fleet.url)
    entries = [k for k in client.scan_iter(f"{keys.LM_CACHE}:*") if k != keys.LM_CACHE_INDEX.encode()]
    assert entries
    for key in entries[:50]:
        value = client.get(key)
        assert value is not None and isinstance(json.loads(value), dict)
        assert 0 < client.ttl(key) <= 7 * 24 * 3600


def test_two_identical_jobs_side_by_side_make_each_lm_call_once(cache_fleet: Fleet) -> None:
    job = spec("p -> w", "given", True, 31, lm="t.counted_slow")
    alone, alone_calls = run(cache_fleet, job)  # what one job pays on a cold cache
    store = redis.Redis.from_url(cache_fleet.url)
    store.delete(*store.scan_iter(f"{keys.LM_CACHE}:*"))  # cold again

    client = cache_fleet.client()
    before = calls(cache_fleet)
    ids = [client.submit(job) for _ in range(2)]
    results = [client.wait(job_id, timeout_s=180) for job_id in ids]
    pair_calls = calls(cache_fleet) - before

    for result in results:
        assert [(c.strategy, c.score, canonical(c.program_state)) for c in result.candidates] == alone
    # The two jobs really ran at the same time: each one's optimizer step started before the other's ended.
    first, second = (StepRecord.model_validate_json(store.get(keys.step_key(job_id, 1)) or b"") for job_id in ids)
    assert first.started_at < second.finished_at and second.started_at < first.finished_at
    # Every request was made once in the fleet: the other job waited for it instead of making it again.
    assert alone_calls > 0
    assert pair_calls == alone_calls


def test_held_out_scoring_of_candidates_jobs_share_makes_each_lm_call_once(cache_fleet: Fleet) -> None:
    # Two strategies with a common prefix: `p` and `p -> w` share the baseline and the `p` candidate.
    client = cache_fleet.client()
    short, long = (client.submit(spec(s, "given", True, 41, lm="t.counted")) for s in ("p", "p -> w"))
    for job_id in (short, long):
        client.wait(job_id, timeout_s=120)

    before = calls(cache_fleet)
    first = client.evaluate(short, "t.arith", "test", timeout_s=120)
    first_calls = calls(cache_fleet) - before
    before = calls(cache_fleet)
    second = client.evaluate(long, "t.arith", "test", timeout_s=120)
    second_calls = calls(cache_fleet) - before
    before = calls(cache_fleet)
    again = client.evaluate(long, "t.arith", "test", timeout_s=120)

    assert first.error is None and second.error is None and first_calls > 0
    # The shared candidates score the same and cost nothing the second time: only `p -> w`'s own
    # candidate is paid (uncached, the second report would cost at least as much as the first).
    assert {k: second.scores[k] for k in first.scores} == first.scores and len(second.scores) == 3
    assert 0 < second_calls < first_calls
    assert calls(cache_fleet) - before == 0 and again.scores == second.scores
