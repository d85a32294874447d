"""Where a real-model comparison spends its CPU: a zero-shot call, and a fine-tune step.

    python -m bench.local_speed [--n 8] [--steps 2] [--threads 1]

1. Zero-shot catalog calls (ChatAdapter, falling back to JSONAdapter): server CPU per example with the
   structured server off and on (`BTQ_LOCAL_SERVER_STRUCTURED_SERVER`), and with the logits of every
   prompt token computed or only the last one's (`BTQ_LOCAL_SERVER_LOGITS_ALL`).
2. LoRA training steps on 4 demo-laden catalog prompts: training CPU per step with the batch run whole
   and with its shared prefix run once.
CPU time, not wall time, so a loaded machine changes the figures less. Needs the `local` extra.
"""

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import dspy

from btq.worker.artifacts.store import store_from_url
from btq.worker.lm.local.models import BASE_MODELS
from btq.worker.lm.local.provider import LlamaCppProvider
from btq.worker.lm.local.registry import SMOLLM2
from btq.worker.lm.local.server import STRUCTURED, ServerPool
from btq.worker.lm.local.settings import FinetuneSettings, ServerSettings
from btq.worker.lm.local.tasks import catalog


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def zero_shot(n: int, structured_server: bool, logits_all: bool = False) -> dict[str, Any]:
    """Run `n` zero-shot catalog examples; return server CPU and wall seconds per example."""
    pool = ServerPool(ServerSettings(n_threads=1, structured_server=structured_server, logits_all=logits_all))
    provider = LlamaCppProvider(store_from_url(tempfile.mkdtemp(prefix="btq-speed-")), pool=pool)
    lm = provider.lm(SMOLLM2, max_tokens=64, stop=["\n\n", "\n["])
    program = catalog.program()
    program.set_lm(lm)
    splits = catalog.author_splits()

    def server_cpu() -> float:
        servers = [pool.get(lm.model), pool.get(lm.model, STRUCTURED)]
        return sum(_cpu_s(s.process.pid) for s in servers if s is not None)

    def run(example: dspy.Example) -> None:
        with contextlib.suppress(Exception):  # an unparsable answer still cost its calls
            program(**example.inputs())

    try:
        run(splits["train"][0])  # starts both servers
        cpu, began, calls = server_cpu(), time.monotonic(), len(lm.history)
        for example in splits["val"][:n]:
            run(example)
        return {
            "structured_server": structured_server,
            "logits_all": logits_all,
            "server_cpu_s_per_example": round((server_cpu() - cpu) / n, 3),
            "wall_s_per_example": round((time.monotonic() - began) / n, 2),
            "lm_calls": len(lm.history) - calls,
        }
    finally:
        pool.stop_all()


def finetune_steps(steps: int, threads: int) -> dict[str, Any]:
    """Time LoRA steps (batch 4, 8 demos per prompt) whole and with the shared prefix run once."""
    import torch

    from btq.worker.lm.local.training.sft_data import encode_chat
    from btq.worker.lm.local.training.train import TrainSpec, _load_model, batch_loss

    torch.set_num_threads(threads)
    splits = catalog.author_splits()
    demos = [e.toDict() for e in splits["train"][:8]]
    adapter = dspy.ChatAdapter()
    recipe = FinetuneSettings()
    spec = TrainSpec(
        data="",
        out="",
        base_gguf=str(BASE_MODELS["smollm2-135m-instruct"].gguf()),
        cache_dir=str(Path.home() / ".cache" / "btq" / "local"),
        recipe=recipe.model_dump(mode="json"),
        threads=threads,
    )
    model, tokenizer, _ = _load_model(spec, recipe)
    examples = [
        encode_chat(
            tokenizer,
            adapter.format_finetune_data(
                catalog.CatalogEntry, demos, e.inputs().toDict(), {"catalog_name": e.catalog_name}
            )["messages"],
            recipe.max_length,
        )
        for e in splits["train"][20 : 20 + 4 * steps]
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    out: dict[str, Any] = {"threads": threads, "tokens_per_example": len(examples[0].input_ids)}
    for mode, min_prefix in (("whole", 10**9), ("shared_prefix", 16)):
        cpu = 0.0
        for step in range(steps):
            began = time.process_time()
            loss = batch_loss(model, examples[4 * step : 4 * step + 4], pad, min_prefix=min_prefix)
            loss.backward()
            model.zero_grad(set_to_none=True)
            cpu += time.process_time() - began
        out[f"{mode}_cpu_s_per_step"] = round(cpu / steps, 2)
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps({"loadavg": os.getloadavg()[0]}), flush=True)
    for split, logits_all in ((False, True), (True, True), (True, False)):
        print(json.dumps(zero_shot(args.n, split, logits_all)), flush=True)
    print(json.dumps(finetune_steps(args.steps, args.threads)), flush=True)


if __name__ == "__main__":
    main()
