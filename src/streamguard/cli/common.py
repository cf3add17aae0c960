"""Options several commands share, spelled once."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_config_options(p: argparse.ArgumentParser, what: str = "YAML config (see configs/)") -> None:
    """``--config FILE`` and ``--set KEY=VALUE ...``: every stage with settings takes both."""
    p.add_argument("--config", type=Path, default=None, help=what)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")


class DeprecatedAlias(argparse.Action):
    """An old option name: stores into the new one's ``dest`` and says once, on stderr, what to write instead."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"streamguard: warning: {option_string} is deprecated here, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def hidden_alias(action: argparse.Action) -> argparse.Action:
    """Keep an option's later spellings working but out of --help and usage: argparse finds an option through
    the parser's own table, while help and error messages print ``option_strings``."""
    action.option_strings = action.option_strings[:1]
    return action
