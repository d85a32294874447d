"""`python -m bench [--quick] [--only SECTION ...]`: run the sections, print the table, write the JSON."""

import os

# Before anything imports litellm (through dspy): a local cost map, no network fetch at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import dataclasses
import logging
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.config import BENCH_DBS, FULL, LM_DESCRIPTION, QUICK, RESULTS_DIR
from bench.context import BenchContext
from bench.redis_dbs import flush
from bench.report import SectionResult, render_notes, render_table, write_json
from bench.stats import summarize

Section = Callable[[BenchContext], SectionResult]


def _sections() -> dict[str, Section]:
    # Imported here: each section pulls in dspy and the worker code, which the argument parser does not need.
    from bench.cache_calls import run_cache
    from bench.events import run_events
    from bench.memory import run_memory
    from bench.money import run_money
    from bench.onejob import run_onejob
    from bench.optimizers import run_optimizers
    from bench.overhead import run_overhead
    from bench.scale import run_scale
    from bench.storage import run_storage

    return {
        "overhead": run_overhead,
        "scale": run_scale,
        "onejob": run_onejob,
        "cache": run_cache,
        "optimizers": run_optimizers,
        "events": run_events,
        "memory": run_memory,
        "money": run_money,
        "storage": run_storage,
    }


SECTION_NAMES = ("overhead", "scale", "onejob", "cache", "optimizers", "events", "memory", "money", "storage")


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("dspy").setLevel(logging.WARNING)
    # BetterTogether warns on every run that BootstrapFewShotWithRandomSearch reset predictor LMs: an
    # expected, known message that would otherwise repeat once per in-process repetition.
    logging.getLogger("dspy.teleprompt.bettertogether").setLevel(logging.ERROR)


def _startup_section(ctx: BenchContext) -> SectionResult:
    section = SectionResult("startup")
    section.add(
        "worker start-up (spawn->manifest)",
        "s",
        summarize(ctx.startup_s),
        note="every worker the run started, each alone; excluded from all ratios",
    )
    return section


def _run_section(name: str, run: Section, ctx: BenchContext) -> SectionResult:
    started = time.perf_counter()
    print(f"running {name} ...", flush=True)
    try:
        result = run(ctx)
    except Exception as exc:  # one broken section must not hide the others' figures
        result = SectionResult(name, failures=[f"{type(exc).__name__}: {exc}"])
        traceback.print_exc()
    result.data["section_wall_s"] = time.perf_counter() - started
    print(f"  {name} done in {result.data['section_wall_s']:.0f} s", flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the requested sections and return 1 if any failed (lost events, parity, errors), else 0."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and jobs (smoke run)")
    parser.add_argument("--only", action="append", choices=SECTION_NAMES, help="run only this section (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json", help="JSON output path")
    args = parser.parse_args(argv)
    _quiet_logs()
    plan = QUICK if args.quick else FULL
    sections = _sections()
    chosen = args.only or list(SECTION_NAMES)
    started = time.perf_counter()
    load_before = os.getloadavg()
    print(f"LM: {LM_DESCRIPTION}")
    print(f"mode: {'quick' if args.quick else 'full'}; cores: {os.cpu_count()}; load average: {load_before[0]:.2f}")
    results: list[SectionResult] = []
    with tempfile.TemporaryDirectory(prefix="btq-bench-") as workdir:
        ctx = BenchContext(plan=plan, quick=args.quick, workdir=Path(workdir))
        try:
            for name in chosen:
                results.append(_run_section(name, sections[name], ctx))
        finally:
            for db in BENCH_DBS:
                flush(db)
        if ctx.startup_s:
            results.insert(0, _startup_section(ctx))
    wall_s = time.perf_counter() - started
    meta: dict[str, Any] = {
        "lm": LM_DESCRIPTION,
        "mode": "quick" if args.quick else "full",
        "sections": chosen,
        "plan": dataclasses.asdict(plan),
        "wall_s": wall_s,
        "cores": os.cpu_count(),
        "load_average_start": load_before,
        "load_average_end": os.getloadavg(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "finished_at": time.time(),
    }
    print()
    print(render_table(results))
    notes = render_notes(results)
    if notes:
        print("\nnotes:\n" + notes)
    write_json(args.out, meta, results)
    load_after = meta["load_average_end"][0]
    print(f"\nwall time {wall_s:.0f} s; load average {load_before[0]:.2f} -> {load_after:.2f}; JSON: {args.out}")
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
