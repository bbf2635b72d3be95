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
