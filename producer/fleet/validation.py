"""Validation of a job against what the worker fleet registered (its published manifest).

Everything is checked before anything is enqueued; each error names the field. The rules mirror
dspy.BetterTogether.compile()'s own (in `btq.schemas.job`) plus those only the registry can answer.
"""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from btq.schemas.exceptions import JobValidationError
from btq.schemas.job import REF_MARKERS, DatasetRef, ExampleSource, JobSpec, ProgramRef
from btq.schemas.manifest import RegistryManifest


def parse_spec(data: dict[str, Any] | str | bytes) -> JobSpec:
    """Parse a job from a dict or JSON text; pydantic errors become one JobValidationError."""
    if not isinstance(data, (str, bytes)):
        cycle = cycle_path(data)
        if cycle is not None:
            # Validation would recurse forever (and JSON cannot hold a cycle): refuse at the edge.
            raise JobValidationError(cycle, "circular reference: this value contains itself, which JSON cannot hold")
    try:
        if isinstance(data, (str, bytes)):
            return JobSpec.model_validate_json(data)
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise JobValidationError.of(_field_errors(exc)) from exc


def _field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """Return one (field, message) per top-level field pydantic refused, in the order it found them.

    Of the alternatives a union tried for one field, the deepest error is the one the sender meant.
    """
    deepest: dict[str, tuple[str, str, int]] = {}
    for error in exc.errors():
        path = _field_path(error["loc"])
        field = ".".join(path)
        message = error["msg"].removeprefix("Value error, ")
        if not field and ": " in message:
            field, message = message.split(": ", 1)
        top = field.split(".", 1)[0]
        if top not in deepest or len(path) > deepest[top][2]:
            deepest[top] = (field, message, len(path))
    return [(field, message) for field, message, _ in deepest.values()]


def cycle_path(value: object) -> str | None:
    """Return the dotted path of the first dict or list that contains itself in `value`, or None."""
    on_path: set[int] = set()
    # Iterative depth-first walk: ("enter", value, path) visits, ("leave", id) pops the path marker.
    stack: list[tuple[bool, object, str]] = [(True, value, "")]
    while stack:
        entering, item, path = stack.pop()
        if not entering:
            on_path.discard(id(item))
            continue
        if not isinstance(item, (dict, list)):
            continue
        if id(item) in on_path:
            return path
        on_path.add(id(item))
        stack.append((False, item, path))
        children = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in children:
            if isinstance(child, (dict, list)):
                stack.append((True, child, f"{path}.{key}" if path else str(key)))
    return None


def _field_path(loc: tuple[int | str, ...]) -> list[str]:
    """Drop the union-member tags pydantic puts in error locations ('LiteLLMSpec', 'list[...]')."""
    return [str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or "-" in p))]


def validate_against(spec: JobSpec, manifest: RegistryManifest, max_examples: int) -> None:
    """Raise JobValidationError for anything the fleet cannot run (every refused field at once)."""
    errors: list[tuple[str, str]] = []

    def check(run: Callable[..., object], *args: Any) -> bool:
        try:
            run(*args)
        except JobValidationError as exc:
            errors.extend(e for e in exc.errors if e not in errors)
            return False
        return True

    check(_check_program, "program", spec.program, manifest)
    check(_known, "metric", spec.metric, manifest.metrics)
    if isinstance(spec.lm, str):
        check(_known, "lm", spec.lm, manifest.lms)
    for i, teacher in enumerate(spec.teachers()):
        check(_check_program, "teacher" if not isinstance(spec.teacher, list) else f"teacher.{i}", teacher, manifest)
    check(_check_examples, "trainset", spec.trainset, spec, manifest, max_examples)
    if spec.valset is not None:
        check(_check_examples, "valset", spec.valset, spec, manifest, max_examples)
    classes: dict[str, str] = {}
    if check(lambda: classes.update(_optimizer_classes(spec, manifest))):
        for key, opt in spec.optimizers.items():
            check(_check_optimizer_kwargs, f"optimizers.{key}", opt.kwargs, classes[key], manifest)
        for key, args in (spec.optimizer_compile_args or {}).items():
            check(_check_compile_args, key, args, classes[key], spec, manifest, max_examples)
    if errors:
        raise JobValidationError.of(errors)


def _known(field: str, name: str, entries: dict[str, Any] | list[str]) -> None:
    if name not in entries:
        raise JobValidationError(field, f"{name!r} is not registered on the workers (known: {sorted(entries)})")


def _check_program(field: str, ref: ProgramRef, manifest: RegistryManifest) -> None:
    _known(f"{field}.name", ref.name, manifest.programs)
    if ref.state is None:
        return
    predictors = manifest.programs[ref.name]
    expected = set(predictors) if predictors != ["self"] else {"demos", "signature"}
    missing = sorted(expected - set(ref.state))
    if missing:
        raise JobValidationError(f"{field}.state", f"missing entries {missing} for program {ref.name!r}")


def _check_examples(
    field: str, source: ExampleSource, spec: JobSpec, manifest: RegistryManifest, max_examples: int
) -> None:
    if isinstance(source, DatasetRef):
        _known(f"{field}.dataset", source.dataset, manifest.datasets)
        if source.split not in manifest.datasets[source.dataset]:
            splits = manifest.datasets[source.dataset]
            raise JobValidationError(
                f"{field}.split", f"dataset {source.dataset!r} has no split {source.split!r} (has {splits})"
            )
        return
    if len(source) > max_examples:
        raise JobValidationError(field, f"{len(source)} examples exceed the limit of {max_examples}")
    if not spec.input_keys:
        raise JobValidationError("input_keys", f"required when {field} is given inline (which fields are inputs?)")
    for i, record in enumerate(source):
        missing = [k for k in spec.input_keys if k not in record]
        if missing:
            raise JobValidationError(f"{field}.{i}", f"example lacks input keys {missing}")


def _optimizer_classes(spec: JobSpec, manifest: RegistryManifest) -> dict[str, str]:
    if not spec.optimizers:
        return dict(manifest.default_optimizers)
    classes = {}
    for key, opt in spec.optimizers.items():
        if opt.optimizer not in manifest.optimizers:
            raise JobValidationError(
                f"optimizers.{key}.optimizer",
                f"{opt.optimizer!r} is not an allowed optimizer (allowed: {sorted(manifest.optimizers)})",
            )
        classes[key] = opt.optimizer
    return classes


def _check_optimizer_kwargs(field: str, kwargs: dict[str, Any], cls: str, manifest: RegistryManifest) -> None:
    signature = manifest.optimizers[cls]
    if not signature.init_var_kwargs:
        unknown = sorted(set(kwargs) - set(signature.init_params))
        if unknown:
            raise JobValidationError(
                f"{field}.kwargs", f"{cls}() does not accept {unknown}; it accepts {signature.init_params}"
            )
    _check_refs(f"{field}.kwargs", kwargs, manifest)


def _check_refs(field: str, value: Any, manifest: RegistryManifest) -> None:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in REF_MARKERS:
            marker, name = next(iter(value.items()))
            _known(field, str(name), getattr(manifest, REF_MARKERS[marker]))
            return
        for k, v in value.items():
            _check_refs(f"{field}.{k}", v, manifest)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_refs(f"{field}.{i}", v, manifest)


def _check_compile_examples(
    field: str, value: Any, spec: JobSpec, manifest: RegistryManifest, max_examples: int
) -> None:
    """A compile arg's examples: inline objects, or a registered dataset's split as the job's trainset may be."""
    source: ExampleSource
    if isinstance(value, dict):
        try:
            source = DatasetRef.model_validate(value)
        except ValidationError as exc:
            raise JobValidationError(field, "must be a list of example objects or {dataset, split}") from exc
    elif isinstance(value, list) and all(isinstance(r, dict) for r in value):
        source = value
    else:
        raise JobValidationError(field, "must be a list of example objects or {dataset, split}")
    _check_examples(field, source, spec, manifest, max_examples)


def _check_compile_args(
    key: str, args: dict[str, Any], cls: str, spec: JobSpec, manifest: RegistryManifest, max_examples: int
) -> None:
    field = f"optimizer_compile_args.{key}"
    accepted = manifest.optimizers[cls].compile_params
    invalid = sorted(set(args) - set(accepted))
    if invalid:
        raise JobValidationError(
            field,
            f"Invalid compile arguments for optimizer '{key}': {invalid}. {cls}.compile() accepts: {accepted}",
        )
    if cls == "GEPA" and spec.teacher is not None:
        raise JobValidationError(
            "teacher", "GEPA does not accept a teacher argument. Please remove the teacher argument."
        )
    for name in ("trainset", "valset"):
        if name in args:
            _check_compile_examples(f"{field}.{name}", args[name], spec, manifest, max_examples)
    if "teacher" in args and args["teacher"] is not None:
        refs = args["teacher"] if isinstance(args["teacher"], list) else [args["teacher"]]
        for i, raw in enumerate(refs):
            try:
                ref = ProgramRef.model_validate(raw)
            except ValidationError as exc:
                raise JobValidationError(f"{field}.teacher.{i}", str(exc.errors()[0]["msg"])) from exc
            _check_program(f"{field}.teacher.{i}", ref, manifest)
    rest = {k: v for k, v in args.items() if k not in ("trainset", "valset", "teacher")}
    _check_refs(field, rest, manifest)
