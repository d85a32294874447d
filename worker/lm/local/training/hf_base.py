"""The base model as a trainable Hugging Face checkpoint, dequantized once from its GGUF and cached.

transformers reads a GGUF (with the `gguf` package) into float tensors, which takes ~20 s for the 135M
model; the fp32 safetensors saved here load in ~2 s. The cache is per machine (it is derived from an
installed package, so any worker can rebuild it), keyed by the GGUF's name and size, and written
atomically (staging directory, then rename).
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

DONE = ".complete"


def hf_base_dir(cache_dir: Path, gguf: Path) -> Path:
    """Return where the dequantized checkpoint of `gguf` is cached (it may not exist yet)."""
    return cache_dir / "hf-base" / f"{gguf.stem}-{gguf.stat().st_size}"


def ensure_hf_base(cache_dir: Path, gguf: Path) -> Path:
    """Return a directory with `config.json`, fp32 safetensors and the tokenizer of `gguf`'s model."""
    final = hf_base_dir(cache_dir, gguf)
    if (final / DONE).exists():
        return final
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        detach_gguf_quantizer(model)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / DONE).touch()
        if final.exists():
            shutil.rmtree(final)  # an earlier, interrupted attempt
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not (final / DONE).exists():
            raise
    return final


def detach_gguf_quantizer(model: Any) -> None:
    """Drop the GGUF loader's quantizer from a fully dequantized model so it can be saved.

    transformers 5 keeps the quantizer that read the GGUF attached, and `save_pretrained` refuses a
    "quantized" model. Every weight is a plain float tensor after dequantization; that is checked
    first, so a partly quantized model is never saved as if it were not.

    Raises:
        ValueError: Some parameter is not a floating-point tensor.
    """
    not_float = [name for name, p in model.named_parameters() if not p.dtype.is_floating_point]
    if not_float:
        raise ValueError(f"GGUF model still has quantized parameters: {not_float[:5]}")
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
