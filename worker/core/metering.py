"""Metering of every LM call a step or shard makes: usage accounting, and gates before each request.

dspy sends every LM call (`BaseLM.__call__`, `LM.forward`) through `dspy.clients.execution.execute`,
which looks the shared cache up and then makes one attempt per request against the engine (`_attempt`,
retries included). Both are wrapped once per process: `execute` for accounting (a cache hit is saved,
anything else spent), `_attempt` for what must pass before a provider sees a request (the job's budget,
the fleet's rate limit) and for the provider's 429s. Neither wrapper touches arguments or results, so
what dspy and the program see is unchanged (parity with in-process dspy holds).

The meter is process-wide, like the cancel check (`interrupt`): dspy runs LM calls in threads that do
not inherit context variables, and a worker process runs one step or one shard at a time.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from dspy.clients import execution
from dspy.clients.call_result import usage_dict
from dspy.clients.legacy_outputs import plain, value

from btq.schemas.metrics import WorkerCount
from btq.schemas.usage import Usage
from btq.worker.core.interrupt import StepCancelledError
from btq.worker.core.tally import TALLY


class BudgetExceededError(StepCancelledError):
    """Raised before an LM request once the job's budget is spent; the running step fails with it."""


class Gate(Protocol):
    """What stands between a step's LM calls and the provider (fleet-wide budget and rate limits)."""

    paces_tokens: bool
    """True when `spent` needs each request's tokens (a tokens-per-minute limit applies)."""

    def before_request(self, model: str) -> None:
        """Wait for capacity or raise BudgetExceededError; called before every request, retries too."""

    def rate_limited(self, model: str, retry_after_s: float | None) -> None:
        """The provider answered 429 anyway: slow the fleet down."""

    def spent(self, model: str, tokens: int) -> None:
        """A request finished and used `tokens` (for tokens-per-minute limits)."""


_FIELDS = tuple(Usage.model_fields)
MONEY_FIELDS = frozenset({"cost_usd", "cached_cost_usd"})
"""Counted in integer nano-dollars (per call), so totals do not depend on the order calls are added in."""
NANO = 1_000_000_000

Counts = dict[str, int]
"""Usage counters by `Usage` field name; money fields in nano-dollars."""


def to_usage(counts: Counts) -> Usage:
    """The `Usage` some counters stand for."""
    data: dict[str, Any] = {
        name: counts.get(name, 0) / NANO if name in MONEY_FIELDS else counts.get(name, 0) for name in _FIELDS
    }
    return Usage(**data)


class Meter:
    """Counts the LM usage of one step or shard in this process (thread-safe) and holds its gate."""

    def __init__(self, gate: Gate | None = None) -> None:
        self.gate = gate
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._total: Counts = dict.fromkeys(_FIELDS, 0)
        self._unflushed: Counts = dict.fromkeys(_FIELDS, 0)

    def add(self, **counts: int) -> None:
        """Add counters (Usage field names; money in nano-dollars) to the totals."""
        with self._lock:
            for name, amount in counts.items():
                self._total[name] += amount
                self._unflushed[name] += amount

    def usage(self) -> Usage:
        """Everything counted so far."""
        with self._lock:
            return to_usage(self._total)

    def take_unflushed(self) -> Counts:
        """Counters added since the last call (for batched updates of shared counters)."""
        with self._lock:
            taken = self._unflushed
            self._unflushed = dict.fromkeys(_FIELDS, 0)
        return taken

    def stop(self, reason: str) -> None:
        """Stop the step: its cancel check answers True from now on (see `stopped`)."""
        self.stop_reason = reason

    def stopped(self) -> bool:
        """True once the gate refused a request (the budget is spent)."""
        return self.stop_reason is not None


_meters: list[Meter] = []
_install_lock = threading.Lock()
_originals: dict[str, Callable[..., Any]] = {}


def active() -> Meter | None:
    """The meter of the step or shard running in this process, if any."""
    return _meters[-1] if _meters else None


@contextmanager
def metering(meter: Meter) -> Iterator[Meter]:
    """Count and gate every LM call made while the block runs, in every thread of the process."""
    install()
    with _install_lock:
        _meters.append(meter)
    try:
        yield meter
    finally:
        with _install_lock:
            _meters.remove(meter)


def install() -> None:
    """Wrap dspy's `execute` and `_attempt` (idempotent)."""
    with _install_lock:
        if _originals:
            return
        _originals["execute"] = execution.execute
        _originals["_attempt"] = execution._attempt
        execution.execute = _execute  # BaseLM.__call__ and LM.forward import it at call time
        execution._attempt = _attempt  # looked up as a module global inside `execute`


def _execute(lm: Any, call: Any) -> Any:
    meter = active()
    # Every request a program makes, cache hits included (the cache is looked up inside `execute`): the
    # fleet's lm_requests counter, counted here rather than by a dspy callback, whose mere presence
    # makes dspy inspect the arguments of every module, adapter and LM call.
    TALLY.add(WorkerCount.LM_REQUESTS)
    try:
        result = _originals["execute"](lm, call)
    except Exception:
        TALLY.add(WorkerCount.LM_ERRORS)
        raise
    if meter is not None:
        _account(meter, result)
    return result


def _attempt(lm: Any, call: Any, backend: Any, request: Any, provider: Any, state: Any, results: Any) -> Any:
    meter = active()
    if meter is None:
        return _originals["_attempt"](lm, call, backend, request, provider, state, results)
    model = str(getattr(lm, "model", ""))
    if meter.gate is not None:
        meter.gate.before_request(model)
    seen = len(results)
    try:
        outcome = _originals["_attempt"](lm, call, backend, request, provider, state, results)
    except Exception as exc:
        meter.add(failed_calls=1)
        if meter.gate is not None and _is_rate_limit(exc):
            meter.gate.rate_limited(model, _retry_after_s(exc))
        raise
    meter.add(calls=1)
    if meter.gate is not None and meter.gate.paces_tokens:
        meter.gate.spent(model, sum(sum(_tokens(r.usage)) for r in results[seen:]))
    return outcome


def _account(meter: Meter, result: Any) -> None:
    """Add one finished call's tokens and cost: spent, or saved when the cache answered it."""
    prompt, completion = _tokens(_usage_of(result))
    cost = round(float(result.cost) * NANO) if isinstance(result.cost, int | float) else None
    if result.cache_hit:
        meter.add(cached_calls=1, cached_tokens=prompt + completion, cached_cost_usd=cost or 0)
        TALLY.add(WorkerCount.LM_CACHED_TOKENS, prompt + completion)
        return
    if cost is None:
        meter.add(prompt_tokens=prompt, completion_tokens=completion, unpriced_calls=1)
        TALLY.add(WorkerCount.LM_UNPRICED_REQUESTS)
    else:
        meter.add(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
        TALLY.add(WorkerCount.LM_COST_DOLLARS, cost / NANO)
    # The fleet's /metrics counters (flushed to Redis in batches by the tally).
    TALLY.add(WorkerCount.LM_PROMPT_TOKENS, prompt)
    TALLY.add(WorkerCount.LM_COMPLETION_TOKENS, completion)


def _usage_of(result: Any) -> dict[str, Any]:
    """The call's usage; a cache hit keeps it only in the stored responses (dspy empties `usage`)."""
    if result.usage:
        return dict(result.usage)
    if result.responses:
        total = {"prompt_tokens": 0, "completion_tokens": 0}
        for response in result.responses:
            prompt, completion = _tokens(usage_dict(response))
            total["prompt_tokens"] += prompt
            total["completion_tokens"] += completion
        return total
    if result.raw is not None:
        return dict(plain(value(result.raw, "usage", {}) or {}))
    return {}


def _tokens(usage: Any) -> tuple[int, int]:
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        int(prompt) if isinstance(prompt, int | float) else 0,
        int(completion) if isinstance(completion, int | float) else 0,
    )


def _is_rate_limit(exc: BaseException) -> bool:
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    return status == 429 or "RateLimit" in type(exc).__name__


def _retry_after_s(exc: BaseException) -> float | None:
    """The provider's Retry-After, from a dspy/lm15 error or a LiteLLM/OpenAI error's response headers."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, int | float):
        return float(hint)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(str(headers.get("retry-after") or headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None
