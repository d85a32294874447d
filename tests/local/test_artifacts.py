"""Artifact stores: content names, atomic publication, fetching to a local directory (no model needed)."""

from pathlib import Path

import pytest

from btq.worker.artifacts.store import (
    COMPLETE_MARKER,
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    content_name,
    store_from_url,
)

pytest.importorskip("fsspec")


def test_content_name_is_a_pure_function_of_its_parts() -> None:
    a = content_name("m:ft-", "base", [{"messages": [1, 2]}], {"lr": 1e-4, "steps": 3})
    b = content_name("m:ft-", "base", [{"messages": [1, 2]}], {"steps": 3, "lr": 1e-4})
    assert a == b and a.startswith("m:ft-") and len(a) == len("m:ft-") + 16
    assert content_name("m:ft-", "base", [{"messages": [1, 3]}], {"lr": 1e-4, "steps": 3}) != a
    assert content_name("m:ft-", "base", [{"messages": [1, 2]}], {"lr": 2e-4, "steps": 3}) != a


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "hf").mkdir(parents=True)
    (src / "hf" / "adapter.safetensors").write_bytes(b"weights")
    (src / "adapter.gguf").write_bytes(b"gguf")
    return src


def test_local_store_publishes_a_directory_once_and_atomically(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    name = "llamacpp/base:ft-0123"
    assert not store.exists(name)
    with pytest.raises(FileNotFoundError):
        store.fetch(name)
    final = store.publish_dir(name, _source(tmp_path))
    assert store.exists(name) and final == store.path(name) == store.fetch(name)
    assert (final / "hf" / "adapter.safetensors").read_bytes() == b"weights"
    # A second publication (a retried step) keeps the first, whole.
    other = tmp_path / "other"
    other.mkdir()
    (other / "adapter.gguf").write_bytes(b"different")
    assert store.publish_dir(name, other) == final
    assert (final / "adapter.gguf").read_bytes() == b"gguf"
    # Nothing is left in staging, and names with '/' and ':' are one directory.
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["llamacpp__base_ft-0123"]


def test_local_store_publish_files_keeps_its_behaviour(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    path = store.publish_files("a:b", {"x/y.json": b"{}"})
    assert path == tmp_path / "a_b" and (path / "x" / "y.json").read_bytes() == b"{}"
    assert store.publish_files("a:b", {"x/y.json": b"changed"}) == path
    assert (path / "x" / "y.json").read_bytes() == b"{}"


def test_fsspec_store_publishes_marks_complete_and_fetches(tmp_path: Path) -> None:
    store = FsspecArtifactStore("memory://btq-test-1/artifacts", cache_dir=tmp_path / "cache")
    name = "llamacpp/base:ft-abcd"
    assert not store.exists(name)
    with pytest.raises(FileNotFoundError):
        store.fetch(name)
    store.publish_dir(name, _source(tmp_path))
    assert store.exists(name)
    local = store.fetch(name)
    assert local == store.path(name) and local.is_relative_to(tmp_path / "cache")
    assert (local / "hf" / "adapter.safetensors").read_bytes() == b"weights"
    assert not (local / COMPLETE_MARKER).exists()
    # A second store instance (another worker) with its own cache sees the same artifact.
    other = FsspecArtifactStore("memory://btq-test-1/artifacts", cache_dir=tmp_path / "cache2")
    assert (other.fetch(name) / "adapter.gguf").read_bytes() == b"gguf"


def test_fsspec_store_treats_an_unmarked_upload_as_absent(tmp_path: Path) -> None:
    store = FsspecArtifactStore("memory://btq-test-2/a", cache_dir=tmp_path)
    store.fs.pipe_file(f"{store._remote('half')}/adapter.gguf", b"partial")  # a publisher that died mid-way
    assert not store.exists("half")
    with pytest.raises(FileNotFoundError):
        store.fetch("half")
    store.publish_files("half", {"adapter.gguf": b"whole"})
    assert (store.fetch("half") / "adapter.gguf").read_bytes() == b"whole"


def test_store_from_url_picks_the_store(tmp_path: Path) -> None:
    assert isinstance(store_from_url(tmp_path), LocalArtifactStore)
    local = store_from_url(f"file://{tmp_path}/x")
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path / "x"
    remote = store_from_url("memory://btq-test-3/a", cache_dir=tmp_path)
    assert isinstance(remote, FsspecArtifactStore)
    for store in (local, remote):
        assert isinstance(store, ArtifactStore)
