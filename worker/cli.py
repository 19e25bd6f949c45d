"""``zoom-worker``: the one console entry point; ``python -m worker`` is the same.

Each subcommand lives in a module of ``worker/commands/`` and registers itself with
``@command``, naming the settings it needs (``migrate`` needs a database, not Zoom
credentials). Bad configuration is reported one line per problem and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from worker.runtime.config import ConfigError, Requirement, ServiceSettings, Settings, load_settings

EXIT_CONFIG = 2

# One module per command group; adding a group is one line here.
COMMAND_MODULES = (
    "worker.commands.core",
    "worker.commands.dlq",
    "worker.commands.tokens",
    "worker.commands.serve",
    "worker.commands.topics",
)

S = TypeVar("S", bound=ServiceSettings)
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str  # "run" or a group and a verb: "tokens status"
    help: str
    require: tuple[Requirement, ...]
    arguments: Arguments | None
    settings: type[ServiceSettings]
    handler: Callable[[argparse.Namespace, Any], int]


_REGISTRY: dict[str, Command] = {}


def command(
    name: str,
    help: str,
    *require: Requirement,
    arguments: Arguments | None = None,
    settings: type[S] = Settings,  # type: ignore[assignment]
) -> Callable[[Callable[[argparse.Namespace, S], int]], Callable[[argparse.Namespace, S], int]]:
    """Register a subcommand reading ``settings`` (the worker's unless it names its own)."""

    def register(
        handler: Callable[[argparse.Namespace, S], int],
    ) -> Callable[[argparse.Namespace, S], int]:
        _REGISTRY[name] = Command(name, help, require, arguments, settings, handler)
        return handler

    return register


def _parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="zoom-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for cmd in sorted(_REGISTRY.values(), key=lambda c: c.name):
        group, _, verb = cmd.name.partition(" ")
        if verb:
            if group not in groups:
                group_parser = sub.add_parser(group, help=f"{group} commands")
                groups[group] = group_parser.add_subparsers(dest="verb", required=True)
            leaf = groups[group].add_parser(verb, help=cmd.help)
        else:
            leaf = sub.add_parser(group, help=cmd.help)
        leaf.set_defaults(_command=cmd)
        if cmd.arguments:
            cmd.arguments(leaf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cmd: Command = args._command
    try:
        settings = load_settings(os.environ, cmd.require, cmd.settings)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    from worker.runtime import logging as worker_logging

    worker_logging.configure(settings.log_level, settings.log_format)
    return cmd.handler(args, settings)
