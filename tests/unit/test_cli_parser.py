"""The `btq` parser: every option explains itself, and the exit codes in its help are the documented ones."""

import argparse

from btq.producer.cli.exit_codes import ExitCode
from btq.producer.cli.main import build_parser
from tests.conftest import ROOT


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_and_argument_has_help_text() -> None:
    missing = [
        f"btq {name} {action.dest}"
        for name, sub in _subparsers(build_parser()).items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_the_exit_codes_are_in_the_help_and_in_the_cli_reference() -> None:
    epilog = build_parser().epilog or ""
    reference = (ROOT / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"{code.value} " in epilog
        assert f"| {code.value} | `{code.name}` |" in reference, code
