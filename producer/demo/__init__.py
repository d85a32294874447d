"""End-to-end runs on this machine: `btq demo` (one job, watched live) and `btq compare` (one job per strategy)."""

from btq.producer.demo.run import run_demo

__all__ = ["run_demo"]
