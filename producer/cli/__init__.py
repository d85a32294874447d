"""The `btq` command: one module for the parser and the commands, one per command that grew its own."""

from btq.producer.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
