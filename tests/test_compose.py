"""docker-compose.yml, the Dockerfile and docker/, checked without a Docker engine.

``docker compose config`` (the v2 plugin, where installed) or Debian's
``docker-compose`` 1.29 (``apt-get install docker-compose``) validates and
normalises the compose file offline; the tests then read that normalised form.
What can run here runs for real: the postgres service's init scripts, in the
order the compose file mounts them, against the session's PostgreSQL, followed
by the demo driver and the exporter logging in with the secret URL; the
Alertmanager config renderer (checked by amtool); the Dockerfile's HEALTHCHECK
command against a live exporter; and a wheel built from exactly the files the
Dockerfile copies.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from harness import REPO, free_port, run_exporter, samples, url_with
from psycopg import sql

from exporter.demo import node
from exporter.demo.driver import DemoDriver, DriverOptions, build_parser, options_from
from exporter.demo.stack import StackTiming, render_alertmanager_config

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SECRETS = REPO / "docker" / "demo-secrets"
SERVICES = {"postgres", "demo-driver", "exporter", "prometheus", "alertmanager", "grafana"}
INIT_DIR = "/docker-entrypoint-initdb.d"
PINNED = re.compile(r"^[\w.\-/]+:v?\d+\.\d+(\.\d+)?([\w.\-]*)$")


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail(
        "neither `docker compose` nor `docker-compose` is installed: "
        "apt-get install docker-compose (it validates offline, no engine needed)",
        pytrace=False,
    )


@cache
def _config() -> dict[str, Any]:
    """The compose file as ``docker compose config`` normalises it (cached: one run)."""
    result = subprocess.run(
        [*_compose_command(), "--file", str(COMPOSE_FILE), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def _services() -> dict[str, dict[str, Any]]:
    return dict(_config()["services"])


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume, long or short syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts.append((source, target))
    return mounts


def _secret_file(name: str) -> Path:
    return Path(_config()["secrets"][name]["file"])


# --- the compose file ------------------------------------------------------------------


def test_compose_config_passes_and_has_the_whole_stack() -> None:
    assert set(_services()) == SERVICES


def test_images_are_pinned_and_two_services_build_this_repository() -> None:
    built = {name for name, s in _services().items() if "build" in s}
    assert built == {"exporter", "demo-driver"}
    for name, service in _services().items():
        image = service["image"]
        if name not in built:
            assert PINNED.match(image), f"{name}: {image} is not pinned to a version"
        assert not image.endswith(":latest"), name
    assert _services()["exporter"]["image"] == _services()["demo-driver"]["image"]


def test_every_service_has_a_health_check_and_waits_for_healthy_dependencies() -> None:
    services = _services()
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert how == {"condition": "service_healthy"}, (name, dependency)
    needs = {name: set(s.get("depends_on", {})) for name, s in services.items()}
    assert needs["exporter"] >= {"postgres"}
    assert needs["demo-driver"] == {"postgres"}
    assert needs["prometheus"] == {"exporter", "alertmanager"}
    assert needs["grafana"] == {"prometheus"}


def test_data_lives_in_named_volumes_and_bind_mounts_exist() -> None:
    named = set(_config()["volumes"])
    assert named == {"postgres-data", "prometheus-data", "alertmanager-data", "grafana-data"}
    used = set()
    for name, service in _services().items():
        for source, _target in _mounts(service):
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts missing {source}"
                assert Path(source).resolve().is_relative_to(REPO), source
            else:
                assert source in named, (name, source)
                used.add(source)
    assert used == named


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip')}:{port}"
            assert text.startswith("127.0.0.1:"), (name, port)


def test_prometheus_and_grafana_get_the_repository_files() -> None:
    services = _services()
    prometheus = dict((t, Path(s)) for s, t in _mounts(services["prometheus"]))
    assert prometheus["/etc/prometheus/prometheus.yml"] == REPO / "prometheus" / "prometheus.yml"
    assert prometheus["/etc/prometheus/rules"] == REPO / "prometheus" / "rules"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]

    grafana = services["grafana"]
    mounts = dict((t, Path(s)) for s, t in _mounts(grafana))
    assert mounts["/etc/grafana/provisioning"] == REPO / "grafana" / "provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == REPO / "grafana" / "dashboards"
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith("/var/lib/grafana/dashboards/")
    local = REPO / "grafana" / "dashboards" / home.removeprefix("/var/lib/grafana/dashboards/")
    assert json.loads(local.read_text())["uid"]


def test_the_committed_addresses_name_the_compose_services() -> None:
    """prometheus.yml, the Grafana datasource and the webhook URLs use these hostnames."""
    services = _services()
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "governance")
    (target,) = [t for sc in job["static_configs"] for t in sc["targets"]]
    host, port = target.split(":")
    assert host == "exporter"
    assert services["exporter"]["environment"]["GOVERNANCE_EXPORTER_LISTEN_ADDRESS"] == f":{port}"
    (am_target,) = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert am_target == "alertmanager:9093"
    datasources = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    environment = services["alertmanager"]["environment"]
    for key in ("PAGER_WEBHOOK_URL", "TICKET_WEBHOOK_URL"):
        assert environment[key].startswith("http://demo-driver:9099/")
    assert "--webhook-listen=0.0.0.0:9099" in services["demo-driver"]["command"]


def _driver_options() -> DriverOptions:
    """The demo-driver service's options, as its command line gives them."""
    command = [c for c in _services()["demo-driver"]["command"] if not c.startswith("--database")]
    return options_from(build_parser().parse_args(command))


def test_the_exporter_watches_the_node_the_driver_runs() -> None:
    """The committed repo-spec declares the crons the driver writes at its speed, the
    exporter's window is one demo day at that speed, and postgres has a schema that
    holds the driver's node."""
    options = _driver_options()
    assert options.node == node.NODE_CURRENT
    exporter = _services()["exporter"]
    env = exporter["environment"]
    assert int(env["GOVERNANCE_EXPORTER_WINDOW_SECONDS"]) == options.window_seconds == 1440
    mounts = {target: Path(source) for source, target in _mounts(exporter)}
    committed = REPO / "docker" / "demo-node" / "repo-spec.yaml"
    assert mounts[env["GOVERNANCE_EXPORTER_REPO_SPEC"]] == committed
    assert committed.read_text() == node.repo_spec_text(options.speed), (
        "regenerate it: python -m exporter.demo.driver --speed=60 --print-repo-spec"
        " > docker/demo-node/repo-spec.yaml"
    )
    # The ledger's options in demo time, as `governance-exporter demo` gives them.
    ledger = {
        name: int(env[f"GOVERNANCE_EXPORTER_{name.upper()}"])
        for name in node.exporter_overrides(options.speed)
    }
    assert ledger == node.exporter_overrides(options.speed)
    schemas = [f.name for f in _init_files() if f.name.startswith("schema-")]
    assert schemas == ["schema-2026-08-full.sql"]


def test_the_demo_secrets_agree_with_each_other() -> None:
    postgres = _services()["postgres"]["environment"]
    exporter_url = psycopg.conninfo.conninfo_to_dict(
        _secret_file("exporter_database_url").read_text().strip()
    )
    driver_url = psycopg.conninfo.conninfo_to_dict(
        _secret_file("driver_database_url").read_text().strip()
    )
    assert exporter_url["user"] == "governance_exporter"
    assert exporter_url["password"] == _secret_file("exporter_db_password").read_text().strip()
    assert driver_url["user"] == postgres["POSTGRES_USER"]
    assert driver_url["password"] == _secret_file("postgres_password").read_text().strip()
    for url in (exporter_url, driver_url):
        assert url["host"] == "postgres"
        assert url["dbname"] == postgres["POSTGRES_DB"]
    assert postgres["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"


# --- what runs here for real -----------------------------------------------------------


def _init_files() -> list[Path]:
    """The postgres service's init scripts, in the order the image runs them (by name)."""
    mounts = [(s, t) for s, t in _mounts(_services()["postgres"]) if t.startswith(INIT_DIR)]
    return [Path(source) for source, _ in sorted(mounts, key=lambda m: Path(m[1]).name)]


def test_the_postgres_init_scripts_prepare_what_the_driver_and_exporter_need(
    pg_admin_url: str, tmp_path: Path
) -> None:
    name = f"cogni_compose_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    owner_url = url_with(pg_admin_url, dbname=name)
    try:
        files = _init_files()
        assert [f.suffix for f in files] == [".sql", ".sql", ".sh"]
        for script in files:
            _run_init_script(script, owner_url)
        driver = DemoDriver(owner_url, _driver_options())
        try:
            driver.seed()
        finally:
            driver.close()
        secret = _secret_file("exporter_database_url").read_text().strip()
        admin_info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
        exporter_url = url_with(
            secret, host=str(admin_info.get("host")), port=str(admin_info.get("port")), dbname=name
        )
        compose_env = _services()["exporter"]["environment"]
        env = {
            **{k: v for k, v in compose_env.items() if k.startswith("GOVERNANCE_EXPORTER_LEDGER_")},
            "GOVERNANCE_EXPORTER_REPO_SPEC": str(REPO / "docker" / "demo-node" / "repo-spec.yaml"),
            "GOVERNANCE_EXPORTER_WINDOW_SECONDS": compose_env["GOVERNANCE_EXPORTER_WINDOW_SECONDS"],
            "GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": "",  # as compose runs it: nothing else
        }
        with run_exporter(exporter_url, env=env) as exporter:
            parsed = samples(exporter.metrics())
        assert parsed["governance_exporter_up"][frozenset()] == 1
        balance = parsed["governance_credit_balance_credits"]
        assert next(iter(balance.values())) > 0
        # The declaration matches the rows; the February rows are retired, not missing.
        assert parsed["governance_repo_spec_status"][frozenset({("status", "ok")})] == 1
        assert set(parsed["governance_schedule_drift"].values()) == {0}
        assert set(parsed["governance_charter_configured"].values()) == {1}
        retired = {
            dict(k)["charter"] for k, v in parsed["governance_schedule_retired"].items() if v
        }
        assert retired == {"govern", "community", "engineering", "sustainability"}
        # The ledger: one open epoch, the collect on time, receipts fresh.
        open_epochs = [
            v for k, v in parsed["governance_ledger_epochs"].items() if ("status", "open") in k
        ]
        assert open_epochs == [1]
        (overdue,) = parsed["governance_ledger_collect_overdue_seconds"].values()
        (stall_limit,) = parsed["governance_ledger_collect_stall_limit_seconds"].values()
        assert overdue < stall_limit
        (received,) = parsed["governance_ledger_last_receipt_timestamp_seconds"].values()
        (silence_limit,) = parsed["governance_ledger_receipt_silence_limit_seconds"].values()
        assert time.time() - received < silence_limit
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _run_init_script(script: Path, owner_url: str) -> None:
    """What the postgres image's entrypoint does with a ``.sql`` or executable ``.sh``."""
    if script.suffix == ".sql":
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(script.read_text().encode())
        return
    assert os.access(script, os.X_OK), f"{script} must be executable (the image runs it)"
    info = psycopg.conninfo.conninfo_to_dict(owner_url)
    psql = shutil.which("psql") or str(_pg_bindir() / "psql")
    env = {
        **os.environ,
        "PATH": f"{Path(psql).parent}:{os.environ.get('PATH', '')}",
        "POSTGRES_USER": str(info["user"]),
        "POSTGRES_DB": str(info["dbname"]),
        "PGHOST": str(info.get("host", "127.0.0.1")),
        "PGPORT": str(info.get("port", "5432")),
        "PGPASSWORD": str(info.get("password", "")),
        "EXPORTER_DB_PASSWORD_FILE": str(_secret_file("exporter_db_password")),
    }
    result = subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _pg_bindir() -> Path:
    from exporter.demo.localpg import find_bindir  # noqa: PLC0415

    bindir = find_bindir()
    assert bindir is not None, "PostgreSQL client binaries (psql) are needed"
    return bindir


def test_shell_scripts_parse() -> None:
    scripts = sorted((REPO / "docker").rglob("*.sh"))
    assert len(scripts) >= 2
    for script in scripts:
        result = subprocess.run(
            ["sh", "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (script, result.stderr)


@pytest.mark.parametrize(
    "pager_url",
    [
        "http://demo-driver:9099/pager",
        # Characters a sed replacement would have mangled (`&`, the `|` delimiter, `\`).
        "https://x.example/hook?a=1&b=2|c\\d",
    ],
)
def test_the_alertmanager_renderer_does_what_the_documented_envsubst_does(
    tmp_path: Path, pager_url: str
) -> None:
    env = {
        "PAGER_WEBHOOK_URL": pager_url,
        "TICKET_WEBHOOK_URL": "http://demo-driver:9099/ticket",
    }
    output = tmp_path / "alertmanager.yml"
    template = REPO / "prometheus" / "alertmanager.yml"
    result = subprocess.run(
        [
            "sh",
            str(REPO / "docker" / "alertmanager" / "render-config.sh"),
            str(template),
            str(output),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = render_alertmanager_config(template.read_text(), env=env, timing=StackTiming())
    assert yaml.safe_load(output.read_text()) == yaml.safe_load(expected)
    assert "${" not in output.read_text()
    assert f"'{pager_url}'" in output.read_text()  # literally, in the template's quotes
    if shutil.which("amtool") is None:
        pytest.fail("amtool is not on PATH (apt-get install prometheus-alertmanager)")
    check = subprocess.run(
        ["amtool", "check-config", str(output)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    missing = subprocess.run(
        [
            "sh",
            str(REPO / "docker" / "alertmanager" / "render-config.sh"),
            str(template),
            str(output),
        ],
        env={k: v for k, v in os.environ.items() if not k.endswith("_WEBHOOK_URL")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0
    assert "PAGER_WEBHOOK_URL" in missing.stderr


# --- the Dockerfile --------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_dockerfile_is_slim_pinned_non_root_and_has_a_health_check() -> None:
    instructions = _instructions()
    args = dict(rest.split("=", 1) for kind, rest in instructions if kind == "ARG" and "=" in rest)
    base = args["PYTHON_IMAGE"]
    assert PINNED.match(base), base
    assert "slim" in base
    users = [rest for kind, rest in instructions if kind == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(kind == "HEALTHCHECK" for kind, _ in instructions)
    entrypoint = next(json.loads(rest) for kind, rest in instructions if kind == "ENTRYPOINT")
    assert entrypoint == ["governance-exporter"]


def _copied_sources() -> list[str]:
    sources = []
    for kind, rest in _instructions():
        if kind == "COPY" and "--from=" not in rest:
            sources += shlex.split(rest)[:-1]
    return sources


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    assert patterns[0] == "*", "an allow-list keeps secrets and the git history out"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {s.rstrip("/") for s in _copied_sources()}
    assert copied == allowed
    for source in copied:
        assert (REPO / source).exists(), source
    assert not any(fnmatch.fnmatch("docker/demo-secrets/postgres-password", a) for a in allowed)


def test_the_package_builds_from_exactly_the_copied_files(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in _copied_sources():
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, context / source)
    # setuptools' own build step (what `pip install .` runs), offline: no wheel, no index.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "--quiet",
            "build",
            "--build-lib",
            str(tmp_path / "lib"),
        ],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = {p.relative_to(tmp_path / "lib").as_posix() for p in (tmp_path / "lib").rglob("*")}
    assert {
        "exporter/demo/driver.py",
        "exporter/demo/node.py",
        "exporter/reference/schema-2026-10.sql",
    } <= names


def test_the_image_health_check_command_probes_the_exporter(
    pg_admin_url: str, tmp_path: Path
) -> None:
    healthcheck = next(rest for kind, rest in _instructions() if kind == "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    probe = [sys.executable, *command[1:]]
    with run_exporter(pg_admin_url) as exporter:  # up or not, /healthz answers 200
        listen = exporter.url.removeprefix("http://")
        ok = subprocess.run(
            probe,
            env={**os.environ, "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": listen},
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
    closed = subprocess.run(
        probe,
        env={**os.environ, "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert closed.returncode != 0
