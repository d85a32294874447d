"""Content-addressed artifact names and a shared artifact store with atomic publication."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlparse

if TYPE_CHECKING:
    from btq.worker.artifacts.s3 import S3ArtifactStore


def content_name(prefix: str, *parts: Any) -> str:
    """Return `prefix` plus a short hash of `parts` (JSON-encoded, keys sorted).

    The same base model, data and training settings always give the same name, so a retried step
    finds the artifact an earlier attempt (on any worker) published.
    """
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return f"{prefix}{hashlib.sha256(blob).hexdigest()[:16]}"


class LocalArtifactStore:
    """A directory every worker can reach (local disk, or a shared mount).

    Publication writes into a temporary sibling and renames it into place, so readers see a whole
    artifact or none.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        """Return where artifact `name` lives (it may not exist yet)."""
        return self.root / safe_artifact_name(name)

    def exists(self, name: str) -> bool:
        """Return True when artifact `name` has been published."""
        return self.path(name).is_dir()

    def publish_files(self, name: str, files: dict[str, bytes]) -> Path:
        """Publish `files` (relative name -> content) as artifact `name`; a no-op if it exists."""

        def write(staging: Path) -> None:
            for rel, content in files.items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)

        return self._publish(name, write)

    def publish_dir(self, name: str, source: str | os.PathLike[str]) -> Path:
        """Publish the files under directory `source` as artifact `name`; a no-op if it exists."""
        return self._publish(name, lambda staging: shutil.copytree(source, staging, dirs_exist_ok=True))

    def fetch(self, name: str) -> Path:
        """Return the local directory of published artifact `name`.

        Raises:
            FileNotFoundError: `name` has not been published.
        """
        final = self.path(name)
        if not final.is_dir():
            raise FileNotFoundError(f"artifact {name!r} is not published in {self.root}")
        return final

    def _publish(self, name: str, fill: Callable[[Path], object]) -> Path:
        """Fill a staging directory and rename it into place (see `materialize`)."""
        return materialize(self.path(name), fill)


def materialize(final: Path, fill: Callable[[Path], object]) -> Path:
    """Create directory `final` whole or not at all: fill a staging sibling, then rename it into place.

    A no-op when `final` exists. Readers never see a partial artifact; when another worker renames the
    same content-addressed artifact first, its copy is identical and ours is dropped.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
    try:
        fill(staging)
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not final.is_dir():
            raise
    return final


def safe_artifact_name(name: str) -> str:
    """Return `name` as one path component (model names contain '/' and ':')."""
    return name.replace("/", "__").replace(":", "_")


@runtime_checkable
class ArtifactStore(Protocol):
    """What every artifact store offers: publish once, atomically; fetch to a local directory."""

    def exists(self, name: str) -> bool:
        """Return True when artifact `name` has been published completely."""
        ...

    def path(self, name: str) -> Path:
        """Return the local directory artifact `name` is (or would be) read from."""
        ...

    def fetch(self, name: str) -> Path:
        """Return a local directory holding published artifact `name`."""
        ...

    def publish_files(self, name: str, files: dict[str, bytes]) -> Path:
        """Publish `files` (relative name -> content) as artifact `name`."""
        ...

    def publish_dir(self, name: str, source: str | os.PathLike[str]) -> Path:
        """Publish the files under directory `source` as artifact `name`."""
        ...


COMPLETE_MARKER = ".complete"
"""Written last by `FsspecArtifactStore`: object stores cannot rename, so this marks a whole artifact."""


class FsspecArtifactStore:
    """An artifact store at any fsspec URL (`gs://...`, `memory://...`; `s3://` has `S3ArtifactStore`).

    Object stores cannot rename a directory, so publication uploads every file and then writes
    `COMPLETE_MARKER`; readers treat an artifact without it as absent. Two workers publishing the same
    content-addressed name upload identical bytes, so a race is harmless. Reads are fetched once into
    a local cache directory (staged and renamed, so a local reader also sees all or nothing).
    """

    def __init__(self, url: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.url)
        default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "btq" / "artifacts"
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        self.cache = Path(cache_dir) if cache_dir is not None else default_cache / digest

    def _remote(self, name: str, rel: str = "") -> str:
        base = f"{self._root}/{safe_artifact_name(name)}"
        return f"{base}/{rel}" if rel else base

    def exists(self, name: str) -> bool:
        """Return True when artifact `name` has been published completely (its marker is there)."""
        return bool(self.fs.exists(self._remote(name, COMPLETE_MARKER)))

    def path(self, name: str) -> Path:
        """Return the local cache directory `fetch` puts artifact `name` in (it may not exist yet)."""
        return self.cache / safe_artifact_name(name)

    def fetch(self, name: str) -> Path:
        """Download artifact `name` into the local cache once and return that directory.

        Raises:
            FileNotFoundError: `name` has not been published completely.

        """
        final = self.path(name)
        if final.is_dir():
            return final
        if not self.exists(name):
            raise FileNotFoundError(f"artifact {name!r} is not published at {self.url}")
        prefix = self._remote(name)

        def download(staging: Path) -> None:
            for remote in self.fs.find(prefix):
                rel = remote[len(prefix) :].lstrip("/")
                if rel == COMPLETE_MARKER:
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(remote, str(target))

        return materialize(final, download)

    def publish_files(self, name: str, files: dict[str, bytes]) -> Path:
        """Upload `files` (relative name -> content) as artifact `name`; a no-op if it exists."""
        if not self.exists(name):
            for rel, content in files.items():
                self.fs.pipe_file(self._remote(name, rel), content)
            self.fs.pipe_file(self._remote(name, COMPLETE_MARKER), b"")
        return self.path(name)

    def publish_dir(self, name: str, source: str | os.PathLike[str]) -> Path:
        """Upload the files under directory `source` as artifact `name`; a no-op if it exists."""
        if not self.exists(name):
            root = Path(source)
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                remote = self._remote(name, file.relative_to(root).as_posix())
                self.fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(file), remote)
            self.fs.pipe_file(self._remote(name, COMPLETE_MARKER), b"")
        return self.path(name)


def store_from_url(
    url: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> "LocalArtifactStore | FsspecArtifactStore | S3ArtifactStore":
    """Return the artifact store for `url`.

    A plain path or `file://` URL gives a `LocalArtifactStore`; `s3://bucket/prefix` an `S3ArtifactStore`
    (boto3; endpoint and credentials from boto3's own settings such as `AWS_ENDPOINT_URL`); any other
    scheme (`gs://`, `memory://`, ...) an `FsspecArtifactStore`, whose filesystem package must be installed.
    """
    from btq.worker.artifacts.s3 import S3ArtifactStore

    text = os.fspath(url)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LocalArtifactStore(parsed.path if parsed.scheme == "file" else text)
    if parsed.scheme == "s3":
        return S3ArtifactStore(text, cache_dir=cache_dir)
    return FsspecArtifactStore(text, cache_dir=cache_dir)
