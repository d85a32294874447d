"""The training process: `python -m btq.worker.lm.local.training.train SPEC.json` (started by `btq.worker.lm.local.training.finetune`).

It runs apart from the worker so torch's memory and threads go away with it, a timeout or cancel can
kill it, and the worker never imports torch. It prints one JSON object per line on stdout (progress
events, then `{"event": "done", ...}`); everything else (library logs) goes to stderr, kept in a log.
torch, transformers and peft are imported inside functions, so the worker may import `TrainSpec`.
"""

import json
import math
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from btq.worker.lm.local.settings import FinetuneSettings
from btq.worker.lm.local.training.sft_data import IGNORE, Encoded, pad_batch, shared_prefix

ADAPTER_DIR = "hf_adapter"
MODEL_DIR = "hf_model"
LORA_GGUF = "adapter.gguf"
MODEL_GGUF = "model.gguf"


@dataclass(frozen=True)
class TrainSpec:
    """Everything the training process needs, written by the worker as JSON."""

    data: str
    """JSONL file of `{"messages": [...]}` chat examples."""
    out: str
    """Empty directory receiving the HF checkpoint or adapter and its GGUF."""
    base_gguf: str
    """The base model's GGUF (dequantized once into `cache_dir` when `start_dir` is not given)."""
    cache_dir: str
    recipe: dict[str, Any]
    """`FinetuneSettings` fields."""
    threads: int
    start_dir: str | None = None
    """A full fine-tune's HF checkpoint to start from, instead of the base model."""
    parent_adapter: str | None = None
    """A LoRA adapter (PEFT directory) to continue training, on top of the start checkpoint."""
    convert_timeout_s: float = 600.0

    def write(self, path: Path) -> None:
        """Save as JSON."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> "TrainSpec":
        """Load from JSON."""
        return cls(**json.loads(path.read_text()))


def emit(event: str, **fields: Any) -> None:
    """Print one progress event as a JSON line (the worker reads them as they come)."""
    print(json.dumps({"event": event, **fields}), flush=True)


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_model(spec: TrainSpec, recipe: FinetuneSettings) -> tuple[Any, Any, Path]:
    """Return (trainable model, tokenizer, HF directory whose config the result extends)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from btq.worker.lm.local.training.hf_base import ensure_hf_base

    start = Path(spec.start_dir) if spec.start_dir else ensure_hf_base(Path(spec.cache_dir), Path(spec.base_gguf))
    emit("phase", phase="load", start=str(start))
    model: Any = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(start)
    if spec.parent_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.parent_adapter, is_trainable=recipe.method == "lora")
        if recipe.method == "full":
            model = model.merge_and_unload()  # a full fine-tune continues from the adapted weights
    elif recipe.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model, tokenizer, start


SHARED_PREFIX_MIN = 16
"""Fewer shared tokens than this: the batch runs whole (the prefix pass would cost more than it saves)."""


def batch_loss(model: Any, batch: list[Encoded], pad_id: int, min_prefix: int = SHARED_PREFIX_MIN) -> Any:
    """Return the mean loss over the labelled tokens of `batch` (a tensor to call `backward()` on).

    When the examples share a prefix (the same system prompt and demos), it runs once, batch size one,
    and its keys and values are repeated for every example's rest: the same loss and gradients as the
    whole batch (up to float rounding), with far less compute on demo-laden prompts. Only the logits the
    loss reads are computed.
    """
    import torch
    import torch.nn.functional as F

    padded = {k: torch.tensor(v) for k, v in pad_batch(batch, pad_id).items()}
    prefix = shared_prefix(batch)
    if prefix < min_prefix:
        return model(**padded).loss
    ids, labels = padded["input_ids"], padded["labels"]
    head = model(input_ids=ids[:1, :prefix], use_cache=True, logits_to_keep=1)
    cache = head.cache
    cache.batch_repeat_interleave(len(batch))
    rest = model(input_ids=ids[:, prefix:], attention_mask=padded["attention_mask"], cache=cache, use_cache=True)
    # The logit at position i predicts token i + 1; the last one predicts nothing.
    logits = rest.logits[:, :-1].float()
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, prefix + 1 :].reshape(-1), ignore_index=IGNORE
    )


def _learning_rate(recipe: FinetuneSettings) -> float:
    if recipe.learning_rate is not None:
        return recipe.learning_rate
    # A LoRA adapter starts at zero and needs a far larger step than the full weights tolerate.
    return 2e-4 if recipe.method == "lora" else 2e-5


def train(spec: TrainSpec) -> dict[str, Any]:
    """Fine-tune as `spec` says, save the result and its GGUF into `spec.out`; return the summary."""
    import torch

    from btq.worker.lm.local.training.sft_data import encode_chat

    recipe = FinetuneSettings.model_validate(spec.recipe)
    torch.set_num_threads(spec.threads)
    torch.manual_seed(recipe.seed)
    model, tokenizer, start = _load_model(spec, recipe)
    lines = Path(spec.data).read_text().splitlines()
    examples = [encode_chat(tokenizer, json.loads(line)["messages"], recipe.max_length) for line in lines if line]
    if not examples:
        raise ValueError("no training examples")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    steps_per_epoch = math.ceil(len(examples) / recipe.batch_size)
    total = max(1, min(recipe.max_steps, math.ceil(recipe.epochs * steps_per_epoch)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=_learning_rate(recipe), weight_decay=0.0)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    emit(
        "phase",
        phase="train",
        examples=len(examples),
        truncated=sum(e.truncated for e in examples),
        total_steps=total,
        trainable_params=sum(p.numel() for p in params),
    )
    rng = random.Random(recipe.seed)
    order: list[int] = []
    model.train()
    began = time.monotonic()
    for step in range(1, total + 1):
        if len(order) < recipe.batch_size:
            epoch_order = list(range(len(examples)))
            rng.shuffle(epoch_order)
            order += epoch_order
        batch_ids, order = order[: recipe.batch_size], order[recipe.batch_size :]
        loss = batch_loss(model, [examples[i] for i in batch_ids], pad_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        emit(
            "step",
            step=step,
            total_steps=total,
            loss=round(float(loss.item()), 5),
            epoch=round(step / steps_per_epoch, 3),
            elapsed_s=round(time.monotonic() - began, 2),
        )
    train_s = time.monotonic() - began
    return _save(spec, recipe, model, tokenizer, start, len(examples), train_s)


def _save(
    spec: TrainSpec, recipe: FinetuneSettings, model: Any, tokenizer: Any, start: Path, n: int, train_s: float
) -> dict[str, Any]:
    from btq.worker.lm.local.training.convert import lora_to_gguf, model_to_gguf

    out = Path(spec.out)
    emit("phase", phase="convert")
    began = time.monotonic()
    if recipe.method == "lora":
        model.save_pretrained(out / ADAPTER_DIR)
        lora_to_gguf(out / ADAPTER_DIR, start, out / LORA_GGUF, out / "convert.log", spec.convert_timeout_s)
        hf_dir, gguf = ADAPTER_DIR, LORA_GGUF
    else:
        model.save_pretrained(out / MODEL_DIR, safe_serialization=True)
        tokenizer.save_pretrained(out / MODEL_DIR)
        model_to_gguf(out / MODEL_DIR, out / MODEL_GGUF, out / "convert.log", spec.convert_timeout_s)
        hf_dir, gguf = MODEL_DIR, MODEL_GGUF
    return {
        "examples": n,
        "hf_dir": hf_dir,
        "gguf": gguf,
        "train_s": round(train_s, 2),
        "convert_s": round(time.monotonic() - began, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: train from the spec file named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m btq.worker.lm.local.training.train SPEC.json", file=sys.stderr)
        return 2
    summary = train(TrainSpec.read(Path(args[0])))
    emit("done", **summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
