"""Every command and every option says what it is for in ``--help``."""
from __future__ import annotations

import argparse

from streamguard.cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: str):
    """(command path, parser) for the parser and every subcommand below it, and the subcommands' help texts."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                assert helps.get(name), f"`{path} {name}` has no one-line help in `{path} --help`"
                yield from _walk(child, f"{path} {name}")


def test_every_option_of_every_command_has_help():
    missing = []
    for path, parser in _walk(build_parser(), "streamguard"):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "options without help:\n" + "\n".join(missing)
