"""Settings: flags, the environment, defaults, and every option's validation (no process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.startup import UsageError, load_settings


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVERNANCE_EXPORTER_DATABASE_URL", "postgresql://env@db/cogni")
    monkeypatch.setenv("GOVERNANCE_EXPORTER_WINDOW_SECONDS", "3600")
    monkeypatch.setenv("GOVERNANCE_EXPORTER_EXPECTED_CHARTERS", "govern, Ops ,govern")
    settings = load_settings({"window_seconds": "7200"})
    assert settings.window_seconds == 7200
    assert settings.expected_charters == ("govern", "ops")
    assert settings.conninfo() == "postgresql://env@db/cogni"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVERNANCE_EXPORTER_DATABASE_URL", "postgresql://db/cogni")
    settings = load_settings({})
    assert settings.listen_host_port == ("", 10215)
    assert settings.account == "cogni_system"
    assert settings.rls_user_id == "00000000-0000-4000-a000-000000000001"
    assert settings.window_seconds == 86400
    # Today's nodes declare their charters (or have only rows): none are named by
    # default, so a template node does not miss the four retired February charters.
    assert settings.expected_charters == ()
    assert settings.repo_spec is None
    assert settings.min_run_cost_credits == 4_000_000
    assert settings.statement_timeout_seconds < 10


def test_database_url_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:pw@db/cogni\n")
    settings = load_settings({"database_url_file": str(secret)})
    assert settings.conninfo() == "postgresql://u:pw@db/cogni"
    assert "pw" not in repr(settings)


def test_settings_repr_hides_the_password() -> None:
    settings = load_settings({"database_url": "postgresql://u:s3cr3t@db/cogni"})
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings.model_dump())


def test_usage_error_is_raised_not_printed() -> None:
    with pytest.raises(UsageError, match="--window-seconds"):
        load_settings({"database_url": "x", "window_seconds": "0"})


# --- every option's validation ------------------------------------------------------------

URL = {"database_url": "postgresql://db/cogni"}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("window_seconds", "0"),
        ("window_seconds", "-1"),
        ("window_seconds", str(90 * 86400 + 1)),
        ("window_seconds", "soon"),
        ("min_run_cost_credits", "-1"),
        ("statement_timeout_seconds", "0"),
        ("statement_timeout_seconds", "61"),
        ("cache_seconds", "-0.1"),
        ("cache_seconds", "301"),
        ("pool_max_size", "0"),
        ("pool_max_size", "21"),
        ("max_charters", "0"),
        ("max_charters", "10001"),
        ("web_max_requests", "0"),
        ("web_max_requests", "1001"),
        ("web_request_timeout_seconds", "0"),
        ("web_request_timeout_seconds", "301"),
        ("web_request_timeout_seconds", "3"),  # not above the statement timeout (3 s)
        ("listen_address", "10215"),
        ("listen_address", "host:99999"),
        ("listen_address", "host:port"),
        ("listen_address", ""),
        ("log_level", "loud"),
        ("account", ""),
        ("rls_user_id", ""),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_its_flag(option: str, value: str) -> None:
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UsageError, match=flag):
        load_settings({**URL, option: value})


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("window_seconds", "1", 1),
        ("window_seconds", str(90 * 86400), 90 * 86400),
        ("min_run_cost_credits", "0", 0),
        ("statement_timeout_seconds", "0.5", 0.5),
        ("cache_seconds", "0", 0.0),
        ("cache_seconds", "300", 300.0),
        ("pool_max_size", "20", 20),
        ("max_charters", "1", 1),
        ("web_max_requests", "1000", 1000),
        ("web_request_timeout_seconds", "3.5", 3.5),
        ("log_level", "debug", "DEBUG"),
        ("log_level", "Warning", "WARNING"),
        ("expected_charters", "GOVERN, ops,,govern ", ("govern", "ops")),
        ("expected_charters", "", ()),
        ("expected_charters", " , ", ()),
        ("listen_address", "127.0.0.1:9000", "127.0.0.1:9000"),
    ],
)
def test_values_at_the_edges_are_taken(option: str, value: str, expected: object) -> None:
    assert getattr(load_settings({**URL, option: value}), option) == expected


@pytest.mark.parametrize(
    ("address", "host_port"),
    [
        (":10215", ("", 10215)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_listen_addresses(address: str, host_port: tuple[str, int]) -> None:
    assert load_settings({**URL, "listen_address": address}).listen_host_port == host_port


@pytest.mark.parametrize("url", ["", "   ", "\t\n"])
def test_a_blank_url_is_a_missing_one(url: str) -> None:
    with pytest.raises(UsageError, match="--database-url"):
        load_settings({"database_url": url})


def test_an_unknown_option_is_refused() -> None:
    with pytest.raises(UsageError):
        load_settings({**URL, "colour": "red"})


def test_settings_are_frozen() -> None:
    settings = load_settings(URL)
    with pytest.raises(ValueError, match="frozen"):
        settings.account = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "flag", "env"),
    [
        ("database_url", "--database-url", "GOVERNANCE_EXPORTER_DATABASE_URL"),
        (
            "min_run_cost_credits",
            "--min-run-cost-credits",
            "GOVERNANCE_EXPORTER_MIN_RUN_COST_CREDITS",
        ),
        ("memory_dir", "--memory-dir", "GOVERNANCE_EXPORTER_MEMORY_DIR"),
    ],
)
def test_flag_and_variable_names(field: str, flag: str, env: str) -> None:
    from exporter.settings import option_env, option_flag  # noqa: PLC0415

    assert (option_flag(field), option_env(field)) == (flag, env)


def test_the_url_file_wins_and_is_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("  postgresql://file@db/cogni \n")
    settings = load_settings({**URL, "database_url_file": str(secret)})
    assert settings.conninfo() == "postgresql://file@db/cogni"
