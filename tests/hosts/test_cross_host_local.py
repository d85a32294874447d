"""A `p -> w -> p` job on the real local model (llama.cpp, SmolLM2-135M, CPU LoRA) across three hosts.

The `w` step's host fine-tunes and publishes the LoRA (its GGUF and adapter) to the S3 server on the
infra host; step 3 and its evaluation shards on other hosts fetch it into their own private /tmp and
serve it. The same spec run on a fourth host alone (its own queue and S3 prefix, so it trains again)
gives the same candidates, scores and program states: the model runs at temperature 0 with a fixed
seed. Opt-in (`-m "slow and multihost"`): a real fine-tune takes minutes on a busy machine.
"""

import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from btq.schemas.result import JobResult
from btq.worker.artifacts.store import COMPLETE_MARKER, safe_artifact_name
from btq.worker.lm.local.tasks.dates import date_splits
from tests.hosts.conftest import HostFleet
from tests.hosts.harness import Host, Network
from tests.hosts.table import host_table, render, summary
from tests.local.test_smoke_job import smoke_job
from tests.reference import canonical

pytestmark = [pytest.mark.slow, pytest.mark.multihost]

if os.environ.get("CI"):
    import llama_cpp  # noqa: F401  (CI installs the local extra: its absence is a failure there)
else:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("peft")

CACHE = "/tmp/.cache/btq/artifacts"
"""Where a worker on a simulated host fetches artifacts (XDG_CACHE_HOME is in its private /tmp)."""
LOCAL_ENV = {"BTQ_IMPORTS": '["btq.worker.lm.local.registry"]'}


def local_job() -> dict[str, Any]:
    """The smallest `p -> w -> p` that still fine-tunes for real: the smoke job's optimizers (3 LoRA steps),
    8 train examples, 6 validation examples (3 shards of 2 per evaluation with BTQ_SHARD_MIN_EXAMPLES=2)."""
    splits = date_splits()
    rows = lambda examples: [{"date_text": e.date_text, "iso_date": e.iso_date} for e in examples]  # noqa: E731
    job = smoke_job()
    return {**job, "strategy": "p -> w -> p", "trainset": rows(splits["train"][:8]), "valset": rows(splits["val"][:6])}


def cached(host: Host, artifact_dir: str) -> list[str]:
    """The artifacts in `host`'s own fetch cache for the store at `artifact_dir`."""
    digest = hashlib.sha256(artifact_dir.rstrip("/").encode()).hexdigest()[:12]
    return host.run(["sh", "-c", f"ls {CACHE}/{digest} 2>/dev/null || true"]).split()


def outcome(result: JobResult) -> list[tuple[str, float | None, Any]]:
    return [(c.strategy, c.score, canonical(c.program_state)) for c in result.candidates]


@pytest.mark.timeout(3600)  # two real CPU fine-tunes at once on a busy machine; every wait below is bounded
def test_real_model_p_w_p_across_hosts_serves_the_s3_fine_tune_and_equals_one_host(
    make_network: Callable[..., Network],
) -> None:
    network = make_network(tmp_size="2g")  # the trainer's /tmp holds the base model dequantized (~0.6 GB)
    fleet = HostFleet(network, "btq-hosts-local", LOCAL_ENV)
    fleet.start(["a", "b", "c"])
    solo_dir = f"s3://{network.bucket}/solo"
    solo = HostFleet(network, "btq-hosts-solo", {**LOCAL_ENV, "BTQ_ARTIFACT_DIR": solo_dir})
    solo.start(["solo"])
    shared_dir = f"s3://{network.bucket}/artifacts"
    hosts = {f"btq-{n}": network.hosts[n] for n in ("a", "b", "c")}
    assert not any(h.run(["sh", "-c", "ls -d /tmp/.cache/btq 2>/dev/null || true"]).strip() for h in hosts.values())

    job = local_job()
    started = time.monotonic()
    job_id, solo_id = fleet.client().submit(job), solo.client().submit(job)
    result = fleet.client().wait(job_id, timeout_s=3000)
    wall_s = time.monotonic() - started
    alone = solo.client().wait(solo_id, timeout_s=3000)

    rows = host_table(fleet.redis(), result.job_id)
    print(f"\nper-step host table (job {result.job_id}, {wall_s:.0f} s):\n{summary(rows)}\n\n{render(rows)}")
    assert result.state.value == "succeeded" and not result.flag_compilation_error_occurred
    by_step = sorted(result.candidates, key=lambda c: c.step_index)
    print("candidates (step, strategy, score):", [(c.step_index, c.strategy, c.score) for c in by_step])
    assert [c.strategy for c in by_step] == ["", "p", "p -> w", "p -> w -> p"]
    model = by_step[3].program_state["lm"]["model"]  # type: ignore[index]
    assert ":ft-" in model, f"step 3 does not serve the fine-tune: {model}"

    # The fine-tune is sealed in S3 (its manifest, written last, is there).
    s3: Any = network.s3_client()
    key = f"artifacts/{safe_artifact_name(model)}/{COMPLETE_MARKER}"
    assert s3.get_object(Bucket=network.bucket, Key=key)["Body"].read()

    # A host other than the publisher fetched it into its own cache and scored shards of step 3.
    publisher = next(r.host for r in rows if r.step == 2 and r.shard is None)
    step3 = {r.host for r in rows if r.step == 3}
    fetched = {name for name, host in hosts.items() if safe_artifact_name(model) in cached(host, shared_dir)}
    others = (fetched & step3) - {publisher}
    assert others, f"published on {publisher}; step 3 ran on {step3}; fetched on {fetched}"

    # The same spec on one host alone: the same candidates, scores and program states.
    assert alone.state.value == "succeeded"
    assert outcome(result) == outcome(alone), "the three-host run differs from the one-host run"
    assert (result.best and result.best.strategy) == (alone.best and alone.best.strategy)
