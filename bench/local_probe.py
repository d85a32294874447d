"""Probe the real 135M model on the ISO-date task: accuracy with 0..k demos, and what it answers.

    python -m bench.local_probe --store /tmp/btq-artifacts [--model NAME] [--demos 0 3] [--n 20] [--show 4]

Demos are training examples with their labels (what BootstrapFewShot with the oracle teacher produces),
in ChatAdapter's format. `--model` may name a fine-tune already in the store.
"""

import argparse
import json
import time
from typing import Any

import dspy

from btq.worker.artifacts.store import store_from_url
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.registry import SMOLLM2
from btq.worker.lm.local.tasks.dates import date_splits, iso_exact, program


def probe(lm: dspy.LM, demos: int, n: int, show: int, split: str) -> dict[str, Any]:
    splits = date_splits()
    student = program()
    student.set_lm(lm)
    student.demos = [dspy.Example(**ex.toDict()) for ex in splits["train"][:demos]]
    correct = parsed = 0
    samples: list[str] = []
    began = time.monotonic()
    with dspy.context(adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        for example in splits[split][:n]:
            try:
                answer = str(student(**example.inputs()).iso_date)
                parsed += 1
                ok = iso_exact(example, dspy.Prediction(iso_date=answer))
                correct += ok
            except Exception as exc:  # an unparsable answer is wrong, as in dspy.Evaluate
                answer, ok = f"<unparsed: {str(exc)[-160:]!r}>", False
            if len(samples) < show:
                samples.append(f"{example.date_text!r} -> {answer!r} ({'ok' if ok else 'want ' + example.iso_date})")
    return {
        "model": lm.model,
        "demos": demos,
        "split": split,
        "n": n,
        "parsed": parsed,
        "correct": correct,
        "seconds": round(time.monotonic() - began, 1),
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--demos", type=int, nargs="+", default=[0, 3])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--show", type=int, default=4)
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    provider = LlamaCppProvider(store_from_url(args.store))
    lm = provider.lm(SMOLLM2, temperature=0.0, max_tokens=64).copy(model=args.model)
    try:
        for demos in args.demos:
            print(json.dumps(probe(lm, demos, args.n, args.show, args.split), indent=1), flush=True)
    finally:
        provider.pool.stop_all()


if __name__ == "__main__":
    main()
