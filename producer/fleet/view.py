"""The live worker fleet as a producer sees it, and where a job's tasks go.

Each worker publishes its one heartbeat record, its manifest with its pool size and expiry, under
`keys.worker_key(name, "manifest")` with an expiry it keeps renewing, so a dead worker's record disappears
on its own. A job is accepted
only if one live worker registered everything it names, and its tasks go to the queue of that
worker's registry profile (`keys.profile_queue`), which only workers with the same registry consume.
"""

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from btq.producer.fleet.validation import validate_against
from btq.schemas import keys
from btq.schemas.codec import decode
from btq.schemas.exceptions import DecodeError, FleetUnavailableError, JobValidationError
from btq.schemas.job import REF_MARKERS, DatasetRef, JobSpec, ProgramRef
from btq.schemas.manifest import RegistryManifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveWorker:
    """One worker whose manifest has not expired, and the tasks it is running (task id -> detail)."""

    name: str
    manifest: RegistryManifest
    running: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        """The worker's registry profile."""
        return self.manifest.profile()

    @property
    def pool_size(self) -> int:
        """Processes in the worker's pool (0 when its record does not say)."""
        return self.manifest.pool_size


class FleetView:
    """Reads the live workers of one Redis database."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self.redis = client
        self.queue = queue

    def workers(self, *, with_running: bool = False) -> list[LiveWorker]:
        """Return the live workers (their manifest still present), sorted by name."""
        names = sorted(_text(n) for n in cast(list[bytes], self.redis.zrange(keys.WORKERS, 0, -1)))
        if not names:
            return []
        raws = cast(list[bytes | None], self.redis.mget([keys.worker_key(n, "manifest") for n in names]))
        gone = [n for n, raw in zip(names, raws, strict=True) if raw is None]
        if gone:
            self.redis.zrem(keys.WORKERS, *gone)  # their manifests expired: the workers are dead
        live = []
        now = time.time()
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                continue
            try:
                manifest = decode(RegistryManifest, raw)
            except DecodeError as exc:  # not ours, or another version's: it does not count
                logger.warning("skipping unreadable heartbeat record of worker %s: %s", name, str(exc)[:200])
                continue
            running = self._running(name) if with_running else {}
            if manifest.expires_at and manifest.expires_at < now:
                continue  # lapsed while Redis had not yet expired the key
            live.append(LiveWorker(name=name, manifest=manifest, running=running))
        return live

    def _running(self, name: str) -> dict[str, dict[str, Any]]:
        entries = cast(dict[bytes, bytes], self.redis.hgetall(keys.worker_key(name, "running")))
        running: dict[str, dict[str, Any]] = {}
        for task_id, raw in entries.items():
            try:
                detail = json.loads(raw)
            except ValueError:  # not JSON or not UTF-8: a record someone else wrote
                detail = None
            if not isinstance(detail, dict):
                logger.warning("skipping unreadable running-task entry %s of worker %s", _text(task_id), name)
                continue
            running[_text(task_id)] = detail
        return running

    def manifest(self) -> RegistryManifest:
        """Return everything the live fleet registered, merged (for checks that any worker may answer)."""
        return union([w.manifest for w in self._live()])

    def route(self, spec: JobSpec, max_examples: int, dataset: tuple[str, str] | None = None) -> str:
        """Validate `spec` against the live fleet and return the queue its tasks go to.

        Raises JobValidationError naming the field (or the missing entries) when no live worker can
        run all of the job, and FleetUnavailableError when no worker is alive. `dataset` is an extra
        (name, split) the chosen workers must have (a held-out evaluation).
        """
        workers = self._live()
        validate_against(spec, union([w.manifest for w in workers]), max_examples)
        by_profile: dict[str, list[LiveWorker]] = {}
        for worker in workers:
            by_profile.setdefault(worker.profile, []).append(worker)
        refusals = []
        for profile, members in sorted(by_profile.items(), key=lambda item: (-len(item[1]), item[0])):
            manifest = members[0].manifest
            try:
                validate_against(spec, manifest, max_examples)
            except JobValidationError as exc:
                lacking = missing_entries(spec, manifest, dataset) or [str(exc)]
                refusals.append(f"{', '.join(w.name for w in members)} lack {', '.join(lacking)}")
                continue
            lacking = missing_entries(spec, manifest, dataset)
            if lacking:
                refusals.append(f"{', '.join(w.name for w in members)} lack {', '.join(lacking)}")
                continue
            return keys.profile_queue(self.queue, profile)
        raise JobValidationError("", "no live worker registers everything this job names: " + "; ".join(refusals))

    def _live(self) -> list[LiveWorker]:
        workers = self.workers()
        if not workers:
            raise FleetUnavailableError("no live worker has published its registry: start a worker (btq worker)")
        return workers


def union(manifests: list[RegistryManifest]) -> RegistryManifest:
    """Return one manifest registering everything any of `manifests` registers."""
    first = manifests[0]
    programs: dict[str, list[str]] = {}
    datasets: dict[str, set[str]] = {}
    optimizers = {}
    for m in manifests:
        for name, predictors in m.programs.items():
            programs.setdefault(name, predictors)
        for name, splits in m.datasets.items():
            datasets.setdefault(name, set()).update(splits)
        optimizers.update({k: v for k, v in m.optimizers.items() if k not in optimizers})
    return RegistryManifest(
        programs=programs,
        metrics=sorted({x for m in manifests for x in m.metrics}),
        lms=sorted({x for m in manifests for x in m.lms}),
        datasets={name: sorted(splits) for name, splits in datasets.items()},
        optimizers=optimizers,
        default_optimizers=first.default_optimizers,
        worker="fleet",
        published_at=max(m.published_at for m in manifests),
    )


def missing_entries(spec: JobSpec, manifest: RegistryManifest, dataset: tuple[str, str] | None = None) -> list[str]:
    """Return the entries the job names that `manifest` lacks, e.g. "program 'b.qa'", in a stable order."""
    named = named_entries(spec)
    if dataset is not None:
        named["datasets"].add(dataset[0])
    lacking = []
    for kind in ("programs", "metrics", "lms", "datasets", "optimizers"):
        have = getattr(manifest, kind)
        lacking += [f"{kind[:-1]} {name!r}" for name in sorted(named[kind]) if name not in have]
    if dataset is not None and dataset[0] in manifest.datasets and dataset[1] not in manifest.datasets[dataset[0]]:
        lacking.append(f"split {dataset[1]!r} of dataset {dataset[0]!r}")
    return lacking


def named_entries(spec: JobSpec) -> dict[str, set[str]]:
    """Return every registered name a job refers to, by manifest section."""
    named: dict[str, set[str]] = {k: set() for k in ("programs", "metrics", "lms", "datasets", "optimizers")}
    named["programs"].update(p.name for p in [spec.program, *spec.teachers()])
    named["metrics"].add(spec.metric)
    if isinstance(spec.lm, str):
        named["lms"].add(spec.lm)
    for source in (spec.trainset, spec.valset):
        if isinstance(source, DatasetRef):
            named["datasets"].add(source.dataset)
    named["optimizers"].update(opt.optimizer for opt in spec.optimizers.values())
    refs: list[Any] = [opt.kwargs for opt in spec.optimizers.values()]
    for args in (spec.optimizer_compile_args or {}).values():
        teachers = args.get("teacher")
        for raw in teachers if isinstance(teachers, list) else [teachers] if teachers else []:
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                named["programs"].add(ProgramRef.model_validate(raw).name)
        for name in ("trainset", "valset"):
            ref = args.get(name)  # a {dataset, split} reference (inline examples name no dataset)
            if isinstance(ref, dict) and isinstance(ref.get("dataset"), str):
                named["datasets"].add(str(ref["dataset"]))
        refs.append({k: v for k, v in args.items() if k not in ("trainset", "valset", "teacher")})
    for marker, name in _references(refs):
        named[REF_MARKERS[marker]].add(name)
    return named


def _references(value: Any) -> Iterable[tuple[str, str]]:
    """Yield the ({"$metric": name}-style) references nested anywhere in `value`."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in REF_MARKERS:
            marker, name = next(iter(value.items()))
            yield marker, str(name)
            return
        for v in value.values():
            yield from _references(v)
    elif isinstance(value, list):
        for v in value:
            yield from _references(v)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
