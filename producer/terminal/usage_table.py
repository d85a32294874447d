"""What a job spent, per step and in total: LM calls, tokens, dollars, and what the shared cache saved."""

import sys
from collections.abc import Mapping
from typing import TextIO

from pydantic import ValidationError

from btq.schemas.result import JobResult
from btq.schemas.usage import Usage


def _saved(usage: Usage) -> str:
    if not usage.cached_calls:
        return "-"
    dollars = f", ${usage.cached_cost_usd:.6f}" if usage.cached_cost_usd else ""
    return f"{usage.cached_calls} calls, {usage.cached_tokens} tok{dollars}"


def usage_rows(result: JobResult) -> list[tuple[str, Usage]]:
    """(label, usage) per step that recorded usage, then the job's total."""
    rows = [(f"{index} {_strategy(result, index)}", usage) for index, usage in sorted(result.step_usage.items())]
    if result.usage is not None:
        rows.append(("total", result.usage))
    return rows


def _strategy(result: JobResult, index: int) -> str:
    if index == 0:
        return "(baseline)"
    return " -> ".join(result.strategy.split(" -> ")[:index])


def usage_table(result: JobResult, out: TextIO = sys.stdout) -> None:
    """Print the cost table (nothing for a job that recorded no usage)."""
    rows = usage_rows(result)
    if not rows:
        return
    print(f"{'step':<24} {'calls':>6} {'prompt':>9} {'compl.':>8} {'cost':>13}  saved by cache", file=out)
    for label, usage in rows:
        calls = f"{usage.calls}" + (f"+{usage.failed_calls}!" if usage.failed_calls else "")
        print(
            f"{label:<24} {calls:>6} {usage.prompt_tokens:>9} {usage.completion_tokens:>8} "
            f"{usage.cost_text():>13}  {_saved(usage)}",
            file=out,
        )


def usage_summary(detail: Mapping[str, object]) -> str:
    """`12 calls, 3456 tok, $0.000123` from an event's `usage` detail ('' when absent or unreadable)."""
    raw = detail.get("usage")
    if not isinstance(raw, dict):
        return ""
    try:
        usage = Usage.model_validate(raw)
    except ValidationError:
        return ""  # an event from a newer or broken writer: the line prints without its usage
    saved = f", {usage.cached_calls} cached" if usage.cached_calls else ""
    return f"{usage.calls} calls, {usage.tokens} tok, {usage.cost_text()}{saved}"
