"""Content-addressed artifact names and the shared artifact store every worker resolves (local dir, fsspec URL).

The bottom of the worker: imports nothing of it. Fine-tuned weights are published here atomically, so a
retried step reuses them and another worker loads them.
"""

from btq.worker.artifacts.s3 import S3ArtifactStore
from btq.worker.artifacts.store import (
    COMPLETE_MARKER,
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    content_name,
    materialize,
    safe_artifact_name,
    store_from_url,
)

__all__ = [
    "COMPLETE_MARKER",
    "ArtifactStore",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "content_name",
    "materialize",
    "safe_artifact_name",
    "store_from_url",
]
