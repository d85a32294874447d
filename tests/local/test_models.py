"""Model names and what serves them: base GGUF from a package, fine-tunes from the artifact store."""

from pathlib import Path

import pytest

from btq.worker.artifacts.store import LocalArtifactStore
from btq.worker.lm.local import models
from btq.worker.lm.local.models import FinetuneManifest, ServedModel, base_of, is_finetuned, resolve

BASE = "llamacpp/smollm2-135m-instruct"


class _FakeBase:
    def __init__(self, path: Path) -> None:
        self.path = path

    def gguf(self) -> Path:
        return self.path


@pytest.fixture
def fake_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    gguf = tmp_path / "base.gguf"
    gguf.write_bytes(b"gguf")
    monkeypatch.setitem(models.BASE_MODELS, "smollm2-135m-instruct", _FakeBase(gguf))
    return gguf


def _publish(store: LocalArtifactStore, name: str, kind: str, parent: str, lora_base: str | None) -> Path:
    manifest = FinetuneManifest(
        kind=kind,  # type: ignore[arg-type]
        base="smollm2-135m-instruct",
        parent=parent,
        lora_base=lora_base,
        gguf="adapter.gguf" if kind == "lora" else "model.gguf",
        hf_dir="hf_adapter" if kind == "lora" else "hf_model",
        recipe={},
        examples=1,
        stats={},
    )
    files = {"finetune.json": manifest.to_json(), manifest.gguf: b"gguf"}
    return store.publish_files(name, files)


def test_names() -> None:
    assert base_of(BASE) == "smollm2-135m-instruct"
    assert base_of(f"{BASE}:ft-0011") == "smollm2-135m-instruct"
    assert is_finetuned(f"{BASE}:ft-0011") and not is_finetuned(BASE)
    with pytest.raises(ValueError, match="not a local"):
        base_of("openai/gpt-4o")
    with pytest.raises(ValueError, match="unknown base"):
        base_of("llamacpp/nope")
    assert ServedModel(f"{BASE}:ft-0011", Path("x")).alias == "smollm2-135m-instruct_ft-0011"


def test_base_model_is_served_from_its_package(fake_base: Path) -> None:
    assert resolve(BASE, None) == ServedModel(BASE, fake_base)


def test_lora_is_served_on_the_untouched_base(tmp_path: Path, fake_base: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    name = f"{BASE}:ft-1111"
    directory = _publish(store, name, "lora", BASE, BASE)
    assert resolve(name, store) == ServedModel(name, fake_base, lora=directory / "adapter.gguf")


def test_lora_on_a_full_finetune_uses_that_models_gguf(tmp_path: Path, fake_base: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    full = _publish(store, f"{BASE}:ft-2222", "full", BASE, None)
    lora = _publish(store, f"{BASE}:ft-3333", "lora", f"{BASE}:ft-2222", f"{BASE}:ft-2222")
    served = resolve(f"{BASE}:ft-3333", store)
    assert served.gguf == full / "model.gguf" and served.lora == lora / "adapter.gguf"


def test_unpublished_or_storeless_finetunes_are_refused(tmp_path: Path, fake_base: Path) -> None:
    with pytest.raises(ValueError, match="artifact store"):
        resolve(f"{BASE}:ft-4444", None)
    with pytest.raises(FileNotFoundError):
        resolve(f"{BASE}:ft-4444", LocalArtifactStore(tmp_path))


def test_missing_model_package_says_how_to_install() -> None:
    with pytest.raises(FileNotFoundError, match="install-local"):
        models.BaseModel("btq-no-such-distribution", "x.gguf").gguf()
