"""What the jobs list is asked for (filters, search, sort, page), parsed from a URL's query string.

The page's address carries the same parameters as `/api/jobs`, so a filtered, sorted page of the list
is a bookmark: `/?state=cancelling&q=p%20->%20w&sort=best&order=desc&page=2`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from btq.schemas.result import JobState

Json = dict[str, Any]

STATES = tuple(s.value for s in JobState)

SORTS: dict[str, Callable[[Json], Any]] = {
    "submitted": lambda j: j["submitted_at"],
    "updated": lambda j: j["updated_at"],
    "state": lambda j: j["state"],
    "strategy": lambda j: j["strategy"],
    "program": lambda j: j["program"],
    "best": lambda j: j["best_score"],
    "steps": lambda j: (j["steps_done"], j["steps_total"]),
}
"""Sort keys of the jobs list; jobs without a value (no best score yet) come last either way."""

SEARCHED = ("job_id", "submission_id", "strategy", "program", "lm", "group")
"""Fields `q` is looked for in (case-insensitive, anywhere in the text)."""

DEFAULT_PER_PAGE = 50


class ListQueryError(ValueError):
    """Every bad parameter of a list request at once, each message starting with the parameter's name."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ListQuery:
    """One request to the jobs list; `page` counts from 1."""

    state: str | None = None
    q: str = ""
    strategy: str | None = None
    program: str | None = None
    group: str | None = None
    sort: str = "submitted"
    order: str = "desc"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str], max_per_page: int) -> "ListQuery":
        """Parse query parameters; raise ListQueryError naming every bad one."""
        problems: list[str] = []
        state = params.get("state") or None
        if state is not None and state not in STATES:
            problems.append(f"state: {state!r} is not one of {', '.join(STATES)}")
        sort = params.get("sort") or "submitted"
        if sort not in SORTS:
            problems.append(f"sort: {sort!r} is not one of {', '.join(SORTS)}")
        order = params.get("order") or "desc"
        if order not in ("asc", "desc"):
            problems.append(f"order: {order!r} is not asc or desc")
        page = _whole(params.get("page"), 1, "page", 1, 1_000_000, problems)
        per_page = _whole(
            params.get("per_page"), min(DEFAULT_PER_PAGE, max_per_page), "per_page", 1, max_per_page, problems
        )
        if problems:
            raise ListQueryError(problems)
        return cls(
            state=state,
            q=(params.get("q") or "").strip(),
            strategy=params.get("strategy") or None,
            program=params.get("program") or None,
            group=params.get("group") or None,
            sort=sort,
            order=order,
            page=page,
            per_page=per_page,
        )

    def matches(self, job: Json) -> bool:
        """True when the job passes the search and the exact filters (not the state: counted apart)."""
        for name in ("strategy", "program", "group"):
            wanted = getattr(self, name)
            if wanted is not None and job.get(name) != wanted:
                return False
        if not self.q:
            return True
        needle = self.q.lower()
        return any(needle in str(job.get(name) or "").lower() for name in SEARCHED)

    def ordered(self, jobs: list[Json]) -> list[Json]:
        """Return `jobs` sorted by `sort` in `order`; equal ones keep their order (newest first)."""
        key = SORTS[self.sort]
        valued = [j for j in jobs if key(j) is not None]
        empty = [j for j in jobs if key(j) is None]
        return sorted(valued, key=key, reverse=self.order == "desc") + empty


def _whole(raw: str | None, default: int, name: str, low: int, high: int, problems: list[str]) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        problems.append(f"{name}: {raw!r} is not a whole number from {low} to {high}")
        return default
    return int(raw)
