"""The command line: options, errors in one line with exit status 2, help, version."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import exporter
from exporter import __version__
from exporter.cli import (
    COMMANDS,
    DEFAULT_COMMAND,
    EXIT_INTERRUPTED,
    build_parser,
    configuration_error,
    main,
    overrides_from,
)
from exporter.settings import Settings, commands_of, option_flag, options_of
from exporter.startup import UsageError, limit_malloc_arenas
from exporter.webconfig import WebConfigError, load_web_config

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **(env or {})},
        cwd=REPO,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        ((), {}, "--database-url / GOVERNANCE_EXPORTER_DATABASE_URL"),
        (("--database-url", "x", "--window-seconds", "0"), {}, "--window-seconds"),
        (("--database-url", "x", "--window-seconds", "soon"), {}, "--window-seconds"),
        (
            (),
            {"GOVERNANCE_EXPORTER_DATABASE_URL": "x", "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": "9"},
            "GOVERNANCE_EXPORTER_LISTEN_ADDRESS",
        ),
        (("--database-url", "x", "--listen-address", "host:99999"), {}, "--listen-address"),
        (("--database-url", "x", "--log-level", "loud"), {}, "--log-level"),
        (
            ("--database-url", "x", "--statement-timeout-seconds", "-1"),
            {},
            "--statement-timeout-seconds",
        ),
        (("--database-url", "host=db port=5432 = broken"), {}, "--database-url"),
        (("--database-url-file", "/nonexistent/secret"), {}, "--database-url-file"),
        (("--no-such-flag",), {}, "unrecognized arguments: --no-such-flag"),
        (("serve", "--database-url", "x", "--account", ""), {}, "--account"),
    ],
)
def test_bad_options_stop_with_one_line_and_status_2(
    args: tuple[str, ...], env: dict[str, str], names: str
) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("governance-exporter: error: ")
    assert names in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ((), {"GOVERNANCE_EXPORTER_DATABASE_URL": ""}),
        ((), {"GOVERNANCE_EXPORTER_DATABASE_URL": " \t "}),
        (("--database-url", ""), {}),
        (("check", "--database-url", "  "), {}),
    ],
)
def test_a_blank_database_url_is_a_missing_one(args: tuple[str, ...], env: dict[str, str]) -> None:
    """libpq would take a blank URL as "all defaults" and connect somewhere else."""
    missing = run_cli()
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert result.stderr == missing.stderr
    assert "GOVERNANCE_EXPORTER_DATABASE_URL is required" in result.stderr


@pytest.mark.parametrize("content", ["", " \n\t\n"])
def test_an_empty_database_url_file_is_a_missing_url(tmp_path: Path, content: str) -> None:
    secret = tmp_path / "url"
    secret.write_text(content)
    result = run_cli("--database-url-file", str(secret))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("governance-exporter: error: ")
    assert "GOVERNANCE_EXPORTER_DATABASE_URL is required" in lines[0]
    assert "--database-url-file is empty" in lines[0]


def test_a_bad_url_is_not_echoed() -> None:
    result = run_cli("--database-url", "host=db password=hunter2 = broken")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr


def test_help_explains_every_option_and_its_variable() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in result.stdout
        assert "GOVERNANCE_EXPORTER_" + name.upper() in result.stdout
    for command in ("serve", "check", "demo"):
        assert command in result.stdout
    assert "10215" in result.stdout


def test_every_option_names_the_commands_that_take_it() -> None:
    for name in Settings.model_fields:
        assert set(commands_of(name)) <= set(COMMANDS), name
        assert commands_of(name), name
    # serve, the default command, takes them all; check none of the server's.
    assert options_of(DEFAULT_COMMAND) == tuple(Settings.model_fields)
    server_only = {
        "listen_address",
        "cache_seconds",
        "pool_max_size",
        "web_config_file",
        "web_max_requests",
        "web_request_timeout_seconds",
        "grafana_url",
    }
    assert set(options_of("check")) == set(Settings.model_fields) - server_only


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_commands_help_lists_only_its_own_options(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    for name in Settings.model_fields:
        takes = name in options_of(command)
        assert (option_flag(name) in result.stdout) == takes, (command, name)
        assert ("GOVERNANCE_EXPORTER_" + name.upper() in result.stdout) == takes, (command, name)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_option_reaches_the_commands_that_take_it(command: str) -> None:
    """Given after the command's name, or (serve's, the default) with no name at all."""
    forms = [[command], []] if command == DEFAULT_COMMAND else [[command]]
    for name in options_of(command):
        for form in forms:
            for given in ([option_flag(name), "v"], [f"{option_flag(name)}=v"]):
                args, extra = build_parser(command).parse_known_args([*form, *given])
                assert extra == []
                assert overrides_from(args) == {name: "v"}, (form, given)


@pytest.mark.parametrize(
    ("args", "flag", "command", "owners"),
    [
        (("check", "--listen-address", ":1"), "--listen-address", "check", "serve and demo"),
        (("check", "--web-config-file=/w.yml"), "--web-config-file", "check", "serve"),
        (("check", "--pool-max-size", "3"), "--pool-max-size", "check", "serve"),
        (("check", "--cache-seconds", "0"), "--cache-seconds", "check", "serve and demo"),
        (("--web-max-requests", "9", "check"), "--web-max-requests", "check", "serve"),
        (("--grafana-url", "http://g", "check"), "--grafana-url", "check", "serve and demo"),
        (("demo", "--database-url", "x"), "--database-url", "demo", "serve and check"),
        (("--window-seconds", "60", "demo"), "--window-seconds", "demo", "serve and check"),
        (("rules", "--database-url", "x"), "--database-url", "rules", "serve and check"),
    ],
)
def test_another_commands_option_is_one_line_and_status_2(
    args: tuple[str, ...], flag: str, command: str, owners: str
) -> None:
    """After the command's name or before it: never ignored, never a traceback."""
    result = run_cli(*args, env={"GOVERNANCE_EXPORTER_DATABASE_URL": "host=nowhere"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"governance-exporter: error: {flag} is not an option of {command}, only of "
        f"{owners} (see {command} --help)\n"
    )


def test_server_options_in_the_environment_do_not_stop_check() -> None:
    """One environment serves every command: check ignores the server's variables."""
    result = run_cli(
        "check",
        env={
            "GOVERNANCE_EXPORTER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": "127.0.0.1:1",
            "GOVERNANCE_EXPORTER_WEB_MAX_REQUESTS": "9",
        },
    )
    assert result.returncode == 3, result.stderr  # the database cannot be read
    assert result.stdout.startswith("GOVERNANCE UNKNOWN")


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"governance-exporter {__version__}"


def test_ctrl_c_in_any_command_exits_130_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """cli.main catches a KeyboardInterrupt from whichever command (the demo's
    included) and from its own imports: one line, status 130, no traceback."""

    def interrupted(_args: object, _overrides: object) -> int:
        raise KeyboardInterrupt

    for command in COMMANDS:
        module = importlib.import_module(COMMANDS[command].module)
        monkeypatch.setattr(module, "run", interrupted)
        # The demo makes its own database: it takes no --database-url.
        url = ["--database-url", "x"] if "database_url" in options_of(command) else []
        assert main([*url, command]) == EXIT_INTERRUPTED == 130
        assert capsys.readouterr().err == "governance-exporter: interrupted\n"


def test_a_bad_web_config_file_is_one_line_from_the_command_layer(tmp_path: Path) -> None:
    """webconfig raises its own typed error (file and problem); the CLI words it."""
    path = tmp_path / "web.yml"
    path.write_text("rate_limit: {interval: 1s, burst: 0}\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, UsageError)
    assert caught.value.path == path
    assert caught.value.problem.startswith("rate_limit: ")
    assert configuration_error(caught.value) == f"--web-config-file {path}: {caught.value.problem}"
    assert configuration_error(ValueError("a bug")) is None
    url = "postgresql://nobody@127.0.0.1:1/none"
    result = run_cli("--database-url", url, "--web-config-file", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"governance-exporter: error: --web-config-file {path}: {caught.value.problem}\n"
    )


DEV_TOOLS = {
    "pytest",
    "hypothesis",
    "testcontainers",
    "playwright",
    "promql-parser",
    "kubernetes-validate",
    "ruff",
    "mypy",
    "types-pyyaml",
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_plain_install_is_the_runtime_only() -> None:
    """`pip install .` (the Dockerfile's install) pulls no test or lint tool; they
    are all in `[dev]`, the only extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {_name(requirement) for requirement in project["dependencies"]}
    assert not runtime & DEV_TOOLS
    assert set(project["optional-dependencies"]) == {"dev"}
    dev = {_name(requirement) for requirement in project["optional-dependencies"]["dev"]}
    assert dev >= DEV_TOOLS
    lines = (REPO / "Dockerfile").read_text().splitlines()
    commands = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    installs = re.findall(r"pip install (\S+)", commands)
    assert installs == ["."], installs


def test_no_module_of_the_package_needs_a_dev_tool() -> None:
    """Every module imports in a process where the dev tools are hidden."""
    modules = [
        info.name
        for info in pkgutil.walk_packages(exporter.__path__, "exporter.")
        if not info.name.endswith("__main__")
    ]
    hidden = sorted(name.replace("-", "_") for name in DEV_TOOLS)
    code = (
        "import sys, importlib\n"
        f"for name in {hidden!r}: sys.modules[name] = None\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_serve_caps_malloc_arenas_unless_the_operator_already_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One glibc arena (less resident memory with many threads); an operator's
    MALLOC_ARENA_MAX, which glibc read at start, is left alone."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True  # this is glibc (Debian)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
