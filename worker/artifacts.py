"""Content-addressed artifact names and a shared artifact store with atomic publication."""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


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
        safe = name.replace("/", "__").replace(":", "_")
        return self.root / safe

    def exists(self, name: str) -> bool:
        """True when artifact `name` has been published."""
        return self.path(name).is_dir()

    def publish_files(self, name: str, files: dict[str, bytes]) -> Path:
        """Publish `files` (relative name -> content) as artifact `name`; a no-op if it exists."""
        final = self.path(name)
        if final.is_dir():
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            for rel, content in files.items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            os.rename(staging, final)
        except OSError:
            # Another worker published the same content-addressed artifact first: theirs is identical.
            shutil.rmtree(staging, ignore_errors=True)
            if not final.is_dir():
                raise
        return final
