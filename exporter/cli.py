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
    from collections.abc import Mapping, Sequence
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
(upper case, dashes as underscores); a flag wins over the environment. The
options below are serve's (the default command); each command takes only its
own (governance-exporter COMMAND --help): check has no server options, and the
demo makes its own database, window and repo-spec.
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
    """A sub-command: its module (imported only when chosen) and its one-line help.
    The exporter options it takes are named in ``exporter.settings`` (``Commands``);
    a module may set ``SHOWN_DEFAULTS`` (option -> words) where its defaults are not
    the settings' own."""

    module: str
    help: str


COMMANDS = {
    "serve": Command(
        "exporter.serve", "serve /metrics, /healthz and the status page (the default command)"
    ),
    "check": Command(
        "exporter.check",
        "collect once and print the governance health; exit 0 green, 1 yellow, 2 red, "
        "3 when the database cannot be read",
    ),
    "demo": Command(
        "exporter.demo.command",
        "run a throwaway PostgreSQL with a demo node (today's, by default, or "
        "--node 2026-02), the exporter on it with the node's repo-spec, and Prometheus "
        "and Alertmanager with this repository's rules when installed; Ctrl-C stops all "
        "(exit 130)",
    ),
    # The rules read no database: no exporter options (no field of Settings names it).
    "rules": Command(
        "exporter.rules.command",
        "print the alert and recording rules for the exporter's series picked by --selector: "
        "a Prometheus rule file, or Grafana-managed alert rules (--format grafana)",
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


def _option_help(name: str, field: Any, shown_default: str | None = None) -> str:
    from exporter.settings import option_env  # noqa: PLC0415 - see the module docstring

    default = field.default if shown_default is None else shown_default
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = "" if default is None else f" (default: {default})"
    return f"{field.description}{shown} [env {option_env(name)}]"


def settings_options(
    command: str = DEFAULT_COMMAND, shown_defaults: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """A parent parser with one flag per settings field ``command`` takes, its help
    showing ``shown_defaults`` where given; unset flags stay absent."""
    from exporter.settings import Settings, option_flag, options_of  # noqa: PLC0415 - see the module docstring

    shown_defaults = shown_defaults or {}
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("exporter options")
    for name in options_of(command):
        field = Settings.model_fields[name]
        group.add_argument(
            option_flag(name),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.split("_")[-1].upper(),
            help=_option_help(name, field, shown_defaults.get(name)),
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
        parents=[settings_options(DEFAULT_COMMAND)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=Parser
    )
    for name, command in COMMANDS.items():
        module = _command_module(name) if name == chosen else None
        shown_defaults = getattr(module, "SHOWN_DEFAULTS", None)
        sub = commands.add_parser(
            name,
            help=command.help,
            description=command.help,
            parents=[settings_options(name, shown_defaults)],  # type: ignore[list-item]
        )
        if module is not None:
            module.add_arguments(sub)
    return parser


def foreign_option(command: str, words: Sequence[str]) -> str | None:
    """The one line for the first of ``words`` that is another command's option
    (``check --listen-address``), ``None`` when none is."""
    from exporter.settings import Settings, commands_of  # noqa: PLC0415 - see the module docstring

    for word in words:
        flag = word.partition("=")[0]
        name = flag.removeprefix("--").replace("-", "_")
        if flag.startswith("--") and name in Settings.model_fields:
            return _not_an_option_of(command, name, commands_of(name))
    return None


def _not_an_option_of(command: str, name: str, commands: Sequence[str]) -> str:
    from exporter.settings import option_flag  # noqa: PLC0415 - see the module docstring

    return (
        f"{option_flag(name)} is not an option of {command}, only of "
        f"{' and '.join(commands)} (see {command} --help)"
    )


def check_options(args: argparse.Namespace, extra: Sequence[str]) -> str:
    """The command to run, or ``fail`` in one line when an option is not its own:
    given after its name (argparse left it over) or before it (the top level's)."""
    from exporter.settings import Settings, commands_of  # noqa: PLC0415 - see the module docstring

    command: str = args.command or DEFAULT_COMMAND
    if extra:
        fail(
            foreign_option(command, extra)
            or f"unrecognized arguments: {' '.join(extra)} (see --help)"
        )
    for name in Settings.model_fields:
        if hasattr(args, name) and command not in commands_of(name):
            fail(_not_an_option_of(command, name, commands_of(name)))
    return command


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
    args, extra = parser.parse_known_args(argv)
    command = check_options(args, extra)
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
