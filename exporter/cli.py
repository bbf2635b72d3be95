"""The ``governance-exporter`` command.

Options come from ``GOVERNANCE_EXPORTER_*`` environment variables and from
flags; a flag wins. A bad option stops the command with one line and exit 2;
Ctrl-C at any moment stops it with exit 130 and no traceback.

Only the standard library is imported at the top: everything else (settings,
the chosen command) is imported inside ``main``, where a Ctrl-C is caught.
"""

from __future__ import annotations

import sys

try:  # A Ctrl-C while even these load ends the command quietly too.
    import argparse
    import importlib
    import logging
    from collections.abc import Sequence
    from dataclasses import dataclass
    from typing import Any, NoReturn, Protocol

    from exporter import __version__
except KeyboardInterrupt:
    exec("")  # noqa: S102 - see _clear_unhandled_interrupt_mark
    sys.exit(130)

logger = logging.getLogger(__name__)

PROG = "governance-exporter"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

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
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, overrides: dict[str, Any]) -> int: ...


@dataclass(frozen=True)
class Command:
    """A sub-command: its module (imported only when chosen), its one-line help, and
    the exporter options it takes (``None``: all of them)."""

    module: str
    help: str
    options: tuple[str, ...] | None = None


COMMANDS = {
    "serve": Command(
        "exporter.serve", "serve /metrics, /healthz and the status page (the default command)"
    ),
    "check": Command(
        "exporter.check",
        "collect once and print the governance health; exit 0 green, 1 yellow, 2 red, "
        "3 when the database cannot be read",
    ),
    # The demo makes its own database, repo-spec and window (one demo day): no
    # database, repo-spec or window options.
    "demo": Command(
        "exporter.demo.command",
        "run a throwaway PostgreSQL with a demo node (today's, by default, or "
        "--node 2026-02), the exporter on it with the node's repo-spec, and Prometheus "
        "and Alertmanager with this repository's rules when installed; Ctrl-C stops all "
        "(exit 130)",
        options=("listen_address", "cache_seconds", "grafana_url", "log_level"),
    ),
    # The rules read no database: no exporter options.
    "rules": Command(
        "exporter.rules.command",
        "print the alert and recording rules for the exporter's series picked by --selector: "
        "a Prometheus rule file, or Grafana-managed alert rules (--format grafana)",
        options=(),
    ),
}
DEFAULT_COMMAND = "serve"
# Options that take no value: what follows them may be the command's name.
_VALUELESS = frozenset({"-h", "--help", "--version"})


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _option_help(name: str, field: Any) -> str:
    from exporter.settings import option_env  # noqa: PLC0415 - see the module docstring

    default = field.default
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = "" if default is None else f" (default: {default})"
    return f"{field.description}{shown} [env {option_env(name)}]"


def settings_options(names: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """A parent parser with one flag per settings field (only ``names``, when given);
    unset flags stay absent."""
    from exporter.settings import Settings, option_flag  # noqa: PLC0415 - see the module docstring

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("exporter options")
    for name, field in Settings.model_fields.items():
        if names is not None and name not in names:
            continue
        group.add_argument(
            option_flag(name),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.split("_")[-1].upper(),
            help=_option_help(name, field),
        )
    return parent


def _command_module(name: str) -> CommandModule:
    module: CommandModule = importlib.import_module(COMMANDS[name].module)
    return module


def chosen_command(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line, found without importing any."""
    takes_value = False
    for word in argv:
        if takes_value:
            takes_value = False
        elif word == "--":
            return None
        elif word.startswith("-"):
            takes_value = word.startswith("--") and "=" not in word and word not in _VALUELESS
        else:
            return word if word in COMMANDS else None
    return None


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; only the ``chosen`` command's module is imported (to
    add its own arguments), the others are listed by name and help."""
    parser = Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[settings_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=Parser
    )
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.help,
            description=command.help,
            parents=[settings_options(command.options)],  # type: ignore[list-item]
        )
        if name == chosen:
            _command_module(name).add_arguments(sub)
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    from exporter.settings import Settings  # noqa: PLC0415 - see the module docstring

    return {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}


def configuration_error(exc: Exception) -> str | None:
    """The one line for a library's typed configuration error, ``None`` for any other."""
    from exporter.webconfig import WebConfigError  # noqa: PLC0415 - only on the failure path

    if isinstance(exc, WebConfigError):
        return f"--web-config-file {exc.path}: {exc.problem}"
    return None


def _interrupted(exc: BaseException) -> bool:
    """A Ctrl-C, or an error it caused: a KeyboardInterrupt inside a class body's
    ``__set_name__`` (pydantic's models, while they are imported) comes out as a
    RuntimeError whose cause is the interrupt."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        # Ctrl-C before a command installed its own handling (or in one that has
        # none, such as check): stop quietly. The commands clean up in `finally`.
        _clear_unhandled_interrupt_mark()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _clear_unhandled_interrupt_mark() -> None:
    """Let the status returned here be the exit status.

    CPython marks a KeyboardInterrupt that passes through ``exec()`` of a string
    (dataclasses and pydantic build methods that way while being imported) as
    unhandled even when it is caught later, and then ends the process by SIGINT
    instead of with the status it was given. Each ``exec()`` of a string resets
    that mark first, so an empty one clears it.
    """
    exec("")  # noqa: S102 - a constant empty string, see above


def _main(argv: Sequence[str] | None) -> int:
    from exporter.startup import UsageError  # noqa: PLC0415 - see the module docstring

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    command = args.command or DEFAULT_COMMAND
    try:
        return _command_module(command).run(args, overrides_from(args))
    except UsageError as exc:
        fail(str(exc))
    except ValueError as exc:
        message = configuration_error(exc)
        if message is None:
            raise
        fail(message)


if __name__ == "__main__":
    sys.exit(main())
