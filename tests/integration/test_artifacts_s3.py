"""The artifact store on a real S3-compatible server (moto in server mode): no shared disk anywhere.

Workers publish fine-tunes to `s3://...`; other processes (other hosts, in a deployment) fetch them into
their own cache. A publisher killed mid-upload leaves nothing that reads as an artifact.
"""

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from btq.worker.artifacts import COMPLETE_MARKER, S3ArtifactStore, store_from_url
from tests.conftest import ROOT, running_fleet, wait_until
from tests.objectstore import S3Server, apply_env, restore_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    previous = apply_env(server.env())  # this process's stores reach the server like a worker's do
    try:
        yield server
    finally:
        restore_env(previous)
        server.close()


def tree(root: Path, files: int, size: int) -> dict[str, bytes]:
    """Write `files` files (two levels deep, distinct content) under `root` and return them by relative name."""
    written = {}
    for n in range(files):
        rel = f"part-{n // 10}/shard-{n:04d}.bin"
        content = (f"{n}:".encode() + os.urandom(8)) * (size // 10)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
        written[rel] = content
    return written


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_published_on_one_store_fetched_whole_by_another(s3: S3Server, tmp_path: Path) -> None:
    url = s3.make_bucket("btq-roundtrip") + "/artifacts"
    source = tmp_path / "source"
    files = tree(source, files=12, size=4096)
    publisher = store_from_url(url, cache_dir=tmp_path / "cache-a")
    assert isinstance(publisher, S3ArtifactStore)
    name = "sim/t-small:ft-0123456789ab"
    assert not publisher.exists(name)
    publisher.publish_dir(name, source)

    reader = S3ArtifactStore(url, cache_dir=tmp_path / "cache-b")  # another host: its own cache, no shared disk
    assert reader.exists(name)
    fetched = reader.fetch(name)
    assert fetched.is_relative_to(tmp_path / "cache-b")
    assert local_files(fetched) == files
    stored = s3.keys("btq-roundtrip", "artifacts/")
    assert f"artifacts/sim__t-small_ft-0123456789ab/{COMPLETE_MARKER}" in stored
    assert len(stored) == len(files) + 1


PUBLISHER = textwrap.dedent(
    """
    import sys
    from btq.worker.artifacts import S3ArtifactStore
    S3ArtifactStore(sys.argv[1], cache_dir=sys.argv[3]).publish_dir(sys.argv[2], sys.argv[4])
    """
)


def test_a_publisher_killed_mid_upload_leaves_no_visible_artifact(s3: S3Server, tmp_path: Path) -> None:
    bucket = "btq-killed"
    url = s3.make_bucket(bucket) + "/artifacts"
    source = tmp_path / "source"
    files = tree(source, files=400, size=16_384)
    name = "big-model"
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, url, name, str(tmp_path / "cache-killed"), str(source)],
        cwd=ROOT,
        env={**os.environ, **s3.env()},
    )
    try:
        # Some objects are up, the upload is not finished: kill the host's process there (SIGKILL, no cleanup).
        wait_until(lambda: len(s3.keys(bucket, "artifacts/big-model/")) >= 5, 60, "the upload under way")
        assert proc.poll() is None, "the upload finished before it could be interrupted; make it bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    partial = s3.keys(bucket, "artifacts/big-model/")
    assert 5 <= len(partial) < len(files)
    assert f"artifacts/big-model/{COMPLETE_MARKER}" not in partial

    other = S3ArtifactStore(url, cache_dir=tmp_path / "cache-other")
    assert not other.exists(name)
    with pytest.raises(FileNotFoundError):
        other.fetch(name)
    assert not other.path(name).exists(), "nothing partial is cached locally either"

    # Another host publishing the same content-addressed artifact completes it.
    other.publish_dir(name, source)
    assert other.exists(name)
    reader = S3ArtifactStore(url, cache_dir=tmp_path / "cache-reader")
    assert local_files(reader.fetch(name)) == files


P = {
    "optimizer": "BootstrapFewShotWithRandomSearch",
    "kwargs": {"num_candidate_programs": 2, "max_bootstrapped_demos": 2},
}
W = {"optimizer": "BootstrapFinetune", "kwargs": {}}


def test_workers_publish_fine_tunes_to_the_object_store(s3: S3Server, tmp_path: Path) -> None:
    """A `p -> w` job on two workers whose only artifact store is S3: the fine-tune is there, whole."""
    bucket = "btq-fleet"
    url = s3.make_bucket(bucket) + "/artifacts"
    env = {**s3.env(), "BTQ_ARTIFACT_DIR": url, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    with running_fleet(14, "btq-s3", ["s3a", "s3b"], extra_env=env) as fleet:
        client = fleet.client()
        job_id = client.submit(
            {
                "program": {"name": "t.qa"},
                "lm": "t.sim",
                "metric": "t.exact",
                "optimizers": {"p": P, "w": W},
                "strategy": "p -> w",
                "trainset": {"dataset": "t.arith", "split": "train"},
                "valset": {"dataset": "t.arith", "split": "val"},
                "seed": 5,
            }
        )
        result = client.wait(job_id, timeout_s=240)
    assert result.state == "succeeded", result
    assert not any(Path(fleet.artifact_dir).rglob(COMPLETE_MARKER)), "nothing went to a local directory"
    finetuned = [c for c in result.candidates if c.strategy == "p -> w"]
    assert finetuned and finetuned[0].program_state is not None
    state = finetuned[0].program_state
    # A single Predict's state holds its `lm` at the top; a module's, one level down per predictor.
    models = {str(v["lm"]["model"]) for v in [state, *state.values()] if isinstance(v, dict) and v.get("lm")}
    assert len(models) == 1 and ":ft-" in next(iter(models)), models
    model = next(iter(models))
    reader = S3ArtifactStore(url, cache_dir=tmp_path / "reader")
    assert reader.exists(model)
    record = (reader.fetch(model) / "finetune.json").read_text()
    assert '"base_model": "sim/t-small"' in record
