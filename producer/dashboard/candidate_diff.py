"""What changed between two candidate programs: per predictor, its LM, its instructions (word by word), its demos.

Inputs are `job_view.program_view` lists (instructions, demos, model name per predictor), so a diff shows
nothing the job page would not.
"""

import json
import re
from difflib import SequenceMatcher
from typing import Any

Json = dict[str, Any]

_TOKEN = re.compile(r"\s+|[^\s]+")


def text_diff(a: str, b: str) -> list[Json]:
    """Return `b` against `a` as segments `{"op": "same"|"del"|"add", "text": ...}`, word by word."""
    old, new = _TOKEN.findall(a), _TOKEN.findall(b)
    segments: list[Json] = []

    def put(op: str, tokens: list[str]) -> None:
        if not tokens:
            return
        text = "".join(tokens)
        if segments and segments[-1]["op"] == op:
            segments[-1]["text"] += text
        else:
            segments.append({"op": op, "text": text})

    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            put("same", old[i1:i2])
        else:  # replace, delete, insert: the old words go, the new words come
            put("del", old[i1:i2])
            put("add", new[j1:j2])
    return segments


def _key(demo: Json) -> str:
    return json.dumps(demo, sort_keys=True, default=str)


def _demos(a: list[Json], b: list[Json]) -> Json:
    old = {_key(d): d for d in a}
    new = {_key(d): d for d in b}
    return {
        "a": len(a),
        "b": len(b),
        "kept": sum(1 for k in new if k in old),
        "added": [d for k, d in new.items() if k not in old],
        "removed": [d for k, d in old.items() if k not in new],
    }


def program_diff(a: list[Json], b: list[Json]) -> list[Json]:
    """Return one entry per predictor of either program (in `a`'s order, then `b`'s new ones)."""
    by_a = {p["name"]: p for p in a}
    by_b = {p["name"]: p for p in b}
    names = list(by_a) + [n for n in by_b if n not in by_a]
    entries = []
    for name in names:
        pa, pb = by_a.get(name), by_b.get(name)
        empty: Json = {"instructions": "", "demos": [], "model": None}
        old, new = pa or empty, pb or empty
        instructions = text_diff(old["instructions"] or "", new["instructions"] or "")
        demos = _demos(old["demos"], new["demos"])
        model = {"a": old["model"], "b": new["model"], "changed": old["model"] != new["model"]}
        changed = model["changed"] or any(s["op"] != "same" for s in instructions) or demos["added"] or demos["removed"]
        status = "added" if pa is None else "removed" if pb is None else "changed" if changed else "same"
        entries.append({"name": name, "status": status, "model": model, "instructions": instructions, "demos": demos})
    return entries
