"""The memoized field formatting returns what dspy's own does, value by value and prompt by prompt."""

import dataclasses
import datetime
import sys
from typing import Any

import dspy
import numpy as np
import pydantic
import pytest
from dspy.adapters import utils

from btq.worker.core import formatting


class Point(pydantic.BaseModel):
    x: int
    label: str


@dataclasses.dataclass
class Box:
    side: float


class Opaque:
    """Nothing pydantic can serialize: dspy falls back to `str`."""

    def __str__(self) -> str:
        return "opaque!"


class UnhashableMeta(type):
    __hash__ = None  # type: ignore[assignment]


class Odd(metaclass=UnhashableMeta):
    def __str__(self) -> str:
        return "odd"


VALUES: list[Any] = [
    "text",
    "",
    "ünïcode ✓",
    7,
    -3,
    2**80,
    1.5,
    float("nan"),
    float("inf"),
    True,
    None,
    [1, "a", None],
    (1, 2),
    {"k": [1, 2], "n": {"m": 1.0}},
    {3, 1},
    b"\xff\x00",
    datetime.date(2026, 12, 4),
    Point(x=1, label="p"),
    [Point(x=2, label="q")],
    Box(side=2.5),
    Opaque(),
    [Opaque(), 1],
    np.float32(0.25),
    np.int64(5),
    Odd(),
]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install the memoized function; every module dspy repointed is put back after the test."""
    original = utils.serialize_for_json
    if original is formatting.serialize_for_json:
        pytest.skip("installed before this test (another test's process state)")
    for name, module in list(sys.modules.items()):
        if name.startswith("dspy") and getattr(module, "serialize_for_json", None) is original:
            monkeypatch.setattr(module, "serialize_for_json", original)
    formatting.install()
    return original


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_each_value_serializes_as_dspy_does(value: Any) -> None:
    original = utils.serialize_for_json
    assert repr(formatting.serialize_for_json(value)) == repr(original(value))
    # A second call goes through the kept adapter and still agrees.
    assert repr(formatting.serialize_for_json(value)) == repr(original(value))


def test_one_adapter_is_built_per_type() -> None:
    formatting._adapter.cache_clear()
    for i in range(50):
        formatting.serialize_for_json(f"value {i}")
        formatting.serialize_for_json(i)
    info = formatting._adapter.cache_info()
    assert (info.misses, info.hits) == (2, 98)


def test_install_repoints_every_adapter_and_is_idempotent(installed: Any) -> None:
    import dspy.adapters.base
    import dspy.adapters.json_adapter
    import dspy.adapters.xml_adapter

    for module in (utils, dspy.adapters.base, dspy.adapters.json_adapter, dspy.adapters.xml_adapter):
        assert module.serialize_for_json is formatting.serialize_for_json
    formatting.install()
    assert utils.serialize_for_json is formatting.serialize_for_json


def _prompts() -> list[str]:
    """Messages three adapters write for a signature with typed fields and demos of every kind."""
    signature = dspy.Signature(
        {
            "question": (str, dspy.InputField()),
            "context": (list[str], dspy.InputField()),
            "point": (Point, dspy.InputField()),
            "extra": (dict[str, Any], dspy.InputField()),
            "answer": (str, dspy.OutputField()),
            "score": (float, dspy.OutputField()),
        }
    )
    demos = [
        {
            "question": f"q{i}",
            "context": ["a", "b"],
            "point": Point(x=i, label="d"),
            "extra": {"value": VALUES[i % len(VALUES)] if i % 3 else i, "when": datetime.date(2026, 1, i + 1)},
            "answer": str(i),
            "score": i / 3,
        }
        for i in range(5)
    ]
    inputs = {"question": "now?", "context": ["c"], "point": Point(x=9, label="n"), "extra": {"o": Opaque()}}
    out = []
    for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter(), dspy.XMLAdapter()):
        messages = adapter.format(signature, demos, inputs)
        out.append(repr(messages))
    return out


def test_prompts_are_byte_identical_after_install(installed: Any) -> None:
    formatting.install()
    after = _prompts()
    # The same prompts with dspy's own function everywhere.
    for name, module in list(sys.modules.items()):
        if name.startswith("dspy") and getattr(module, "serialize_for_json", None) is formatting.serialize_for_json:
            module.serialize_for_json = installed
    before = _prompts()
    assert after == before
