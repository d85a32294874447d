"""dspy's field formatting without building a pydantic `TypeAdapter` for every value it formats.

Every input and demo field an adapter writes into a prompt goes through
`dspy.adapters.utils.serialize_for_json`, which builds `TypeAdapter(type(value))` each time: a schema
generation and a new serializer per field value. With four demos of three fields that is some thirty
adapters per LM call, the largest single share of a worker's CPU per call (measured by `bench/`'s
one-job section). An adapter depends only on the type, so this module keeps one per type; the value
each returns, and the fallback to `str(value)` when pydantic cannot build or use one, are unchanged,
so prompts are byte-identical.

Installed once per worker process (`install`).
"""

import functools
import sys
from collections.abc import Hashable
from typing import Any, cast

from pydantic import TypeAdapter

_ADAPTERS_KEPT = 1024
"""Distinct value types kept; programs format a handful (str, int, lists, a few models)."""


@functools.lru_cache(maxsize=_ADAPTERS_KEPT)
def _adapter(kind: Hashable) -> TypeAdapter[Any]:
    # lru_cache keeps no exception: a type pydantic refuses is retried (and refused) each time, as before.
    return TypeAdapter(cast(Any, kind))


def serialize_for_json(value: Any) -> Any:
    """Return `value` as pydantic's JSON-mode Python form, exactly as dspy's function of the same name."""
    try:
        try:
            adapter = _adapter(cast(Hashable, type(value)))
        except TypeError:  # a type whose metaclass makes it unhashable: build one as dspy does
            adapter = TypeAdapter(type(value))
        return adapter.dump_python(value, mode="json", fallback=str)
    except Exception:
        return str(value)


def install() -> None:
    """Point dspy at the memoized `serialize_for_json` (idempotent).

    dspy's modules bind the function by name (`from dspy.adapters.utils import serialize_for_json`):
    each one already imported is repointed, and any imported later reads the repointed attribute.
    """
    from dspy.adapters import utils

    original = utils.serialize_for_json
    if original is serialize_for_json:
        return
    for name, module in list(sys.modules.items()):
        if name.startswith("dspy") and getattr(module, "serialize_for_json", None) is original:
            vars(module)["serialize_for_json"] = serialize_for_json
