"""End to end on the real 135M model: baseline, BootstrapFinetune through the provider, serving elsewhere.

    python -m btq.worker.lm.local.demo --store /tmp/btq-artifacts [--max-steps 30] [--method lora]

1. evaluates the stock `llamacpp/smollm2-135m-instruct` on the ISO-date task (ChatAdapter, JSONAdapter);
2. runs `dspy.BootstrapFinetune` with the oracle teacher (distillation): the provider trains on CPU and
   publishes the fine-tune, content-addressed, in the store;
3. evaluates the fine-tuned program;
4. serves the fine-tune from the store by a fresh provider with its own server pool (as another worker
   would) and evaluates again.
It prints one JSON summary (timings, accuracies, server start and memory, training peak memory).
"""

import argparse
import json
import time
from typing import Any

import dspy

from btq.worker.artifacts.store import store_from_url
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.registry import SMOLLM2
from btq.worker.lm.local.server import ServerPool, register_pool
from btq.worker.lm.local.tasks.dates import date_splits, iso_exact, program, teacher


def evaluate(module: dspy.Module, examples: list[dspy.Example], adapter: dspy.Adapter) -> dict[str, Any]:
    """Return how many answers parsed and how many were exactly right, and the time taken."""
    began = time.monotonic()
    parsed = correct = 0
    with dspy.context(adapter=adapter):
        for example in examples:
            try:
                prediction = module(**example.inputs())
            except Exception:  # an unparsable answer counts as wrong, as in dspy.Evaluate
                continue
            parsed += 1
            correct += bool(iso_exact(example, prediction))
    return {"parsed": parsed, "correct": correct, "n": len(examples), "seconds": round(time.monotonic() - began, 1)}


def _chat() -> dspy.Adapter:
    return dspy.ChatAdapter(use_json_adapter_fallback=False)


def run(store_url: str, train_kwargs: dict[str, Any], n_val: int) -> dict[str, Any]:
    """Run the demo and return its summary."""
    store = store_from_url(store_url)
    events: list[dict[str, Any]] = []

    def progress(event: dict[str, Any]) -> None:
        events.append(event)
        if event.get("event") != "step" or event["step"] % 5 == 0 or event["step"] == event["total_steps"]:
            print(json.dumps(event), flush=True)

    provider = LlamaCppProvider(store, on_progress=progress)
    lm = provider.lm(SMOLLM2, max_tokens=64)
    splits = date_splits()
    val = splits["val"][:n_val]
    summary: dict[str, Any] = {"train_kwargs": train_kwargs}

    began = time.monotonic()
    lm.launch()
    server = provider.pool.get(lm.model)
    assert server is not None
    summary["base_server"] = {"ready_s": round(server.ready_s, 2), "launch_s": round(time.monotonic() - began, 2)}
    student = program()
    student.set_lm(lm)
    summary["base_chat"] = evaluate(student, val, _chat())
    summary["base_json"] = evaluate(student, val, dspy.JSONAdapter())
    summary["base_server"]["rss_mb"] = round((server.rss_bytes() or 0) / 2**20)

    began = time.monotonic()
    optimizer = dspy.BootstrapFinetune(metric=iso_exact, train_kwargs=train_kwargs, num_threads=1)
    with dspy.context(adapter=_chat()):
        finetuned = optimizer.compile(student, trainset=splits["train"], teacher=teacher(splits["train"]))
    ft_lm = finetuned.predictors()[0].lm
    summary["finetune"] = {"model": ft_lm.model, "seconds": round(time.monotonic() - began, 1)}
    summary["finetune"].update(next((e for e in events if e.get("event") == "published"), {"event": "cached"}))
    ft_lm.launch()
    summary["finetuned_chat"] = evaluate(finetuned, val, _chat())

    # Another worker: its own provider and server pool, the same store, the LM rebuilt by model name.
    fresh = LlamaCppProvider(store_from_url(store_url), pool=register_pool(ServerPool()))
    elsewhere = program()
    elsewhere.set_lm(fresh.lm(SMOLLM2, max_tokens=64).copy(model=ft_lm.model))
    summary["served_elsewhere_chat"] = evaluate(elsewhere, val, _chat())
    served = fresh.pool.get(ft_lm.model)
    assert served is not None
    summary["served_elsewhere"] = {
        "lora": str(served.served.lora),
        "ready_s": round(served.ready_s, 2),
        "rss_mb": round((served.rss_bytes() or 0) / 2**20),
    }
    fresh.pool.stop_all()
    provider.pool.stop_all()
    return summary


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", required=True, help="artifact store path or fsspec URL")
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--n-val", type=int, default=20)
    args = parser.parse_args()
    kwargs = {"method": args.method, "max_steps": args.max_steps, "batch_size": args.batch_size}
    print(json.dumps(run(args.store, kwargs, args.n_val), indent=2))


if __name__ == "__main__":
    main()
