"""deploy/compose/docker-compose.governance.yml, the exporter beside a Cogni node, checked
without a Docker engine.

``docker compose config`` (or Debian's ``docker-compose``, as tests/test_compose.py
uses it) validates the snippet alone; the tests then read its normalised form: the
database URL and the web config come from secret files through options the exporter
really has, nothing is published, the image is pinned. Its health check command runs
for real against exporters with and without basic auth. The Alloy blocks that scrape
it are tested in tests/test_cogni_fleet.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from harness import REPO, free_port, run_exporter
from test_compose import PINNED, _compose_command

import exporter
from exporter.settings import Settings, option_env

SNIPPET = REPO / "deploy" / "compose" / "docker-compose.governance.yml"
SERVICE = "governance-exporter"
ROLE_SQL = REPO / "sql" / "monitoring-role.sql"


def _config() -> dict[str, Any]:
    result = subprocess.run(
        [*_compose_command(), "--file", str(SNIPPET), "config"],
        cwd=SNIPPET.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _config()


@pytest.fixture(scope="module")
def service(config: dict[str, Any]) -> dict[str, Any]:
    assert set(config["services"]) == {SERVICE}
    found: dict[str, Any] = config["services"][SERVICE]
    return found


def test_the_snippet_validates_alone_and_pins_this_version(service: dict[str, Any]) -> None:
    image = service["image"]
    assert PINNED.match(image), image
    assert image == f"{SERVICE}:{exporter.__version__}"
    assert "ports" not in service  # Alloy scrapes it on the project's network
    assert service["restart"] == "unless-stopped"
    assert service["cap_drop"] == ["ALL"]


def test_the_database_url_and_web_config_come_from_secret_files(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    environment: dict[str, str] = service["environment"]
    url_file, web_config = option_env("database_url_file"), option_env("web_config_file")
    assert set(environment) == {url_file, web_config, option_env("repo_spec")}
    # Options the exporter has (extra="forbid" would refuse any other).
    assert {"database_url_file", "web_config_file", "repo_spec"} <= set(Settings.model_fields)
    assert option_env("database_url") not in environment  # never the URL itself
    mounted = {f"/run/secrets/{s['source']}" for s in service["secrets"]}
    assert {environment[url_file], environment[web_config]} == mounted
    assert {s["source"] for s in service["secrets"]} == set(config["secrets"])
    text = SNIPPET.read_text(encoding="utf-8")
    # The read-only role of sql/monitoring-role.sql, named in the URL the comment shows.
    assert "CREATE ROLE governance_exporter" in ROLE_SQL.read_text(encoding="utf-8")
    assert "postgresql://governance_exporter:" in text
    assert "sql/monitoring-role.sql" in text


def _probe(service: dict[str, Any], address: str) -> subprocess.CompletedProcess[bytes]:
    """The service's health check command, run here against ``address``."""
    command = list(service["healthcheck"]["test"])
    assert command[:3] == ["CMD", "python", "-c"]
    script = command[3]
    assert script.count("127.0.0.1:10215") == 1
    return subprocess.run(
        [sys.executable, "-c", script.replace("127.0.0.1:10215", address)],
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_the_health_check_passes_behind_basic_auth_and_fails_when_closed(
    service: dict[str, Any], pg_admin_url: str, tmp_path: Path
) -> None:
    web_config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    web_config.write_text(yaml.safe_dump({"basic_auth_users": {"alloy": hashed}}))
    env = {option_env("web_config_file"): str(web_config)}
    with run_exporter(pg_admin_url, env=env, wait=False) as guarded:
        address = guarded.url.removeprefix("http://")
        for _attempt in range(200):  # until it listens
            answered = _probe(service, address)
            if answered.returncode == 0:
                break
            assert b"401" not in answered.stderr
        assert answered.returncode == 0, answered.stderr
    with run_exporter(pg_admin_url) as open_exporter:  # no web config: 200
        assert _probe(service, open_exporter.url.removeprefix("http://")).returncode == 0
    closed = _probe(service, f"127.0.0.1:{free_port()}")
    assert closed.returncode != 0
