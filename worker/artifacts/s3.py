"""The artifact store in S3 or any S3-compatible object store (MinIO, Ceph, R2, moto), through boto3.

Object stores cannot rename, so an artifact is published file by file and then sealed by its manifest,
`COMPLETE_MARKER`, written last: a JSON list of every file with its size. Readers see an artifact only
once its manifest exists and fetch exactly the files it lists, so a publisher killed mid-upload (its
host lost, its process SIGKILLed) leaves objects nobody reads; a later publisher of the same
content-addressed name overwrites them with identical bytes and seals the artifact.

The endpoint and credentials are boto3's own settings (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, an
instance role, ...): nothing of them is in a job or in Redis.
"""

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from btq.worker.artifacts.store import COMPLETE_MARKER, materialize, safe_artifact_name

MANIFEST_VERSION = 1


class S3ArtifactStore:
    """Artifacts under `s3://bucket/prefix`, fetched once into a local cache directory per store URL."""

    def __init__(self, url: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
        self.url = url.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "btq" / "artifacts"
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        self.cache = Path(cache_dir) if cache_dir is not None else default_cache / digest
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use (so a prefork child makes its own after the fork)."""
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("s3")
            return self._client

    def _key(self, name: str, rel: str = "") -> str:
        parts = [p for p in (self.prefix, safe_artifact_name(name), rel) if p]
        return "/".join(parts)

    def manifest(self, name: str) -> dict[str, int] | None:
        """Return the sealed artifact's files (relative name -> size), None while it is not published."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name, COMPLETE_MARKER))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        files = json.loads(body)["files"]
        return {str(rel): int(size) for rel, size in files.items()}

    def exists(self, name: str) -> bool:
        """Return True when artifact `name` has been published completely (its manifest is there)."""
        return self.manifest(name) is not None

    def path(self, name: str) -> Path:
        """Return the local cache directory `fetch` puts artifact `name` in (it may not exist yet)."""
        return self.cache / safe_artifact_name(name)

    def fetch(self, name: str) -> Path:
        """Download artifact `name` into the local cache once (all files or none) and return that directory.

        Raises:
            FileNotFoundError: `name` has not been published completely.
        """
        final = self.path(name)
        if final.is_dir():
            return final
        files = self.manifest(name)
        if files is None:
            raise FileNotFoundError(f"artifact {name!r} is not published at {self.url}")

        def download(staging: Path) -> None:
            for rel, size in files.items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, self._key(name, rel), str(target))
                if target.stat().st_size != size:
                    raise OSError(f"artifact {name!r}: {rel} has {target.stat().st_size} bytes, manifest says {size}")

        return materialize(final, download)

    def publish_files(self, name: str, files: dict[str, bytes]) -> Path:
        """Upload `files` (relative name -> content) as artifact `name`, then seal it; a no-op if it exists."""
        if not self.exists(name):
            for rel, content in sorted(files.items()):
                self.client.put_object(Bucket=self.bucket, Key=self._key(name, rel), Body=content)
            self._seal(name, {rel: len(content) for rel, content in files.items()})
        return self.path(name)

    def publish_dir(self, name: str, source: str | os.PathLike[str]) -> Path:
        """Upload the files under directory `source` as artifact `name`, then seal it; a no-op if it exists."""
        if not self.exists(name):
            root = Path(source)
            sizes: dict[str, int] = {}
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = file.relative_to(root).as_posix()
                # upload_file switches to a multipart upload for large weights.
                self.client.upload_file(str(file), self.bucket, self._key(name, rel))
                sizes[rel] = file.stat().st_size
            self._seal(name, sizes)
        return self.path(name)

    def _seal(self, name: str, sizes: dict[str, int]) -> None:
        manifest = {"version": MANIFEST_VERSION, "files": dict(sorted(sizes.items()))}
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(name, COMPLETE_MARKER), Body=json.dumps(manifest).encode()
        )
