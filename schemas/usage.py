"""LM usage and budgets on the wire: what a call, shard, step or job spent, and what a job may spend."""

from typing import Annotated

from pydantic import Field, model_validator

from btq.schemas.version import WireModel


class Usage(WireModel):
    """LM calls, tokens and dollars spent, and what the shared cache saved.

    `cost_usd` sums the calls whose price is known; `unpriced_calls` counts the others (a model missing
    from the cost map, a custom engine), so a cost is never guessed: readers show it as unknown.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    failed_calls: int = 0
    cached_calls: int = Field(default=0, description="Calls answered by the shared cache (saved, not spent)")
    cached_tokens: int = Field(default=0, description="Prompt + completion tokens the cache saved")
    cached_cost_usd: float = Field(default=0.0, description="Dollars the cache saved (priced calls only)")

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens spent."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_known(self) -> bool:
        """True when every spent call had a price."""
        return self.unpriced_calls == 0

    def cost_text(self) -> str:
        """Dollars spent as text: `unknown` when no spent call was priced, `>=$x` when only some were."""
        if self.calls and self.unpriced_calls >= self.calls:
            return "unknown"
        return f"{'>=' if self.unpriced_calls else ''}${self.cost_usd:.6f}"

    def plus(self, other: "Usage") -> "Usage":
        """Return the sum of two usages."""
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})


PositiveInt = Annotated[int, Field(ge=1)]


class Budget(WireModel):
    """What a job may spend across the whole fleet; the step running when it is reached fails.

    Each limit is optional; a limit of 0 would stop the job before its baseline, so it is refused.
    """

    max_lm_calls: PositiveInt | None = Field(default=None, description="LM calls made (cache hits are free)")
    max_tokens: PositiveInt | None = Field(default=None, description="Prompt + completion tokens spent")
    max_cost_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="Dollars spent, from the LiteLLM cost map (unpriced calls count 0)"
    )

    @model_validator(mode="after")
    def _some_limit(self) -> "Budget":
        if self.max_lm_calls is None and self.max_tokens is None and self.max_cost_usd is None:
            raise ValueError("budget names no limit: set max_lm_calls, max_tokens or max_cost_usd")
        return self
