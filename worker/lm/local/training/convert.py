"""HF checkpoints to GGUF with llama.cpp's own conversion scripts (the llama-cpp-python sdist's copy).

scripts/install-local.sh puts them in `$VENV/share/llama.cpp-convert/<version>` with the `gguf-py` of
the same llama.cpp revision, so the GGUF written matches the llama.cpp that serves it.
`BTQ_LOCAL_CONVERT_DIR` overrides the location.
"""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from btq.worker.lm.local.procs import spawn, tail, terminate

LORA_SCRIPT = "convert_lora_to_gguf.py"
MODEL_SCRIPT = "convert_hf_to_gguf.py"


class ConversionError(RuntimeError):
    """A conversion script failed or is missing; the message says which and why."""


def convert_dir() -> Path:
    """Return the directory holding llama.cpp's conversion scripts.

    Raises:
        ConversionError: They are not installed.
    """
    override = os.environ.get("BTQ_LOCAL_CONVERT_DIR")
    if override:
        directory = Path(override)
    else:
        try:
            version = importlib.metadata.version("llama_cpp_python")
        except importlib.metadata.PackageNotFoundError as exc:
            raise ConversionError("llama-cpp-python is not installed (run scripts/install-local.sh)") from exc
        directory = Path(sys.prefix) / "share" / "llama.cpp-convert" / version
    if not (directory / LORA_SCRIPT).is_file():
        raise ConversionError(f"llama.cpp conversion scripts not found in {directory} (run scripts/install-local.sh)")
    return directory


def _run(args: list[str], log: Path, timeout_s: float) -> None:
    # Threads stay bounded like training's; the scripts are single-pass and short (~5 s for an adapter).
    process = spawn([sys.executable, *args], log=log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        terminate(process, 5)
        raise ConversionError(f"{args[0]} did not finish within {timeout_s}s:\n{tail(log)}") from None
    if code != 0:
        raise ConversionError(f"{args[0]} exited with {code}:\n{tail(log)}")


def lora_to_gguf(adapter_dir: Path, base_dir: Path, out: Path, log: Path, timeout_s: float = 600) -> Path:
    """Convert a PEFT LoRA adapter (trained on the HF checkpoint `base_dir`) to an f16 GGUF LoRA at `out`."""
    script = convert_dir() / LORA_SCRIPT
    args = [str(script), "--base", str(base_dir), "--outfile", str(out), "--outtype", "f16", str(adapter_dir)]
    _run(args, log, timeout_s)
    return out


def model_to_gguf(model_dir: Path, out: Path, log: Path, timeout_s: float = 1200) -> Path:
    """Convert a full HF checkpoint (config, weights, tokenizer) to a GGUF model at `out` (f16)."""
    script = convert_dir() / MODEL_SCRIPT
    _run([str(script), "--outfile", str(out), "--outtype", "f16", str(model_dir)], log, timeout_s)
    return out
