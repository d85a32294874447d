"""Names of the counters workers keep in Redis for `/metrics` (the `keys.METRICS` hash fields).

Workers add to them, the producer's metrics collector reads them: both sides spell them from here.
"""

from enum import StrEnum


class WorkerCount(StrEnum):
    """One fleet-wide counter; its Prometheus name is `btq_<value>_total`."""

    LM_REQUESTS = "lm_requests"
    LM_ERRORS = "lm_errors"
    LM_CACHE_HITS = "lm_cache_hits"
    LM_CACHE_MISSES = "lm_cache_misses"
    EVALUATIONS_SHARDED = "evaluations_sharded"
    SHARDS_SCORED = "shards_scored"
    SHARDS_TAKEN_OVER = "shards_taken_over"
    LM_PROMPT_TOKENS = "lm_prompt_tokens"
    LM_COMPLETION_TOKENS = "lm_completion_tokens"
    LM_COST_DOLLARS = "lm_cost_dollars"
    LM_CACHED_TOKENS = "lm_cached_tokens"
    LM_UNPRICED_REQUESTS = "lm_unpriced_requests"


COUNT_HELP: dict[WorkerCount, str] = {
    WorkerCount.LM_REQUESTS: "LM requests made by programs in steps and shards, cache hits included",
    WorkerCount.LM_ERRORS: "LM requests that raised",
    WorkerCount.LM_CACHE_HITS: "LM requests answered by the fleet's LM-call cache",
    WorkerCount.LM_CACHE_MISSES: "LM requests the LM-call cache did not have (the call was made)",
    WorkerCount.EVALUATIONS_SHARDED: "Evaluate calls cut into shards across the fleet",
    WorkerCount.SHARDS_SCORED: "Evaluation shards scored and stored, by the step or by a helper",
    WorkerCount.SHARDS_TAKEN_OVER: "Evaluation shards taken over after their holder's lease lapsed",
    WorkerCount.LM_PROMPT_TOKENS: "Prompt tokens of LM calls made (cache hits excluded)",
    WorkerCount.LM_COMPLETION_TOKENS: "Completion tokens of LM calls made (cache hits excluded)",
    WorkerCount.LM_COST_DOLLARS: "Cost in US dollars of priced LM calls made (LiteLLM's cost map)",
    WorkerCount.LM_CACHED_TOKENS: "Tokens of LM calls the cache answered (not spent)",
    WorkerCount.LM_UNPRICED_REQUESTS: "LM calls made whose model has no price (cost unknown)",
}
"""The HELP text of each counter on /metrics."""


def parse_counts(raw: dict[bytes, bytes]) -> dict[WorkerCount, float]:
    """Return the counters of a `keys.METRICS`-shaped hash (HGETALL); unknown or bad fields are skipped."""
    counts: dict[WorkerCount, float] = {}
    for field, value in raw.items():
        try:
            counts[WorkerCount(field.decode())] = float(value)
        except (ValueError, UnicodeDecodeError):
            continue
    return counts
