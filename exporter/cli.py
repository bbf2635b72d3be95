"""The ``governance-exporter`` command.

Options come from ``GOVERNANCE_EXPORTER_*`` environment variables and from
flags; a flag wins. A bad option stops the command with one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from exporter import __version__
from exporter.settings import Settings, option_env, option_flag
from exporter.startup import UsageError

logger = logging.getLogger(__name__)

PROG = "governance-exporter"
EXIT_USAGE = 2

DESCRIPTION = """\
Prometheus exporter for the governance of a Cogni node: the system billing
account's credit balance, burn rate and runway, and each governance charter's
schedule, runs, failures, last success and next run. It exists because on
2026-02-15 every governance run was rejected for hours for lack of credits and
nothing noticed.

Every option is also an environment variable GOVERNANCE_EXPORTER_<OPTION>
(upper case, dashes as underscores); a flag wins over the environment.
"""

EPILOG = """\
examples:
  governance-exporter --database-url postgresql://monitor@db/cogni
  governance-exporter check --output json
  governance-exporter demo
"""


class CommandModule(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, overrides: dict[str, Any]) -> int: ...


# Sub-commands live in their own modules, imported only when chosen.
COMMANDS = {
    "serve": "exporter.serve",
    "check": "exporter.check",
    "demo": "exporter.demo",
}
DEFAULT_COMMAND = "serve"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _option_help(name: str, field: Any) -> str:
    default = field.default
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = "" if default is None else f" (default: {default})"
    return f"{field.description}{shown} [env {option_env(name)}]"


def settings_options() -> argparse.ArgumentParser:
    """A parent parser with one flag per settings field; unset flags stay absent."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("exporter options")
    for name, field in Settings.model_fields.items():
        group.add_argument(
            option_flag(name),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.split("_")[-1].upper(),
            help=_option_help(name, field),
        )
    return parent


def _command_module(name: str) -> CommandModule:
    module: CommandModule = importlib.import_module(COMMANDS[name])
    return module


def build_parser() -> argparse.ArgumentParser:
    options = settings_options()
    parser = Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[options],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=Parser
    )
    for name in COMMANDS:
        module = _command_module(name)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            parents=[options],  # type: ignore[list-item]
        )
        module.add_arguments(sub)
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or DEFAULT_COMMAND
    try:
        return _command_module(command).run(args, overrides_from(args))
    except UsageError as exc:
        fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
