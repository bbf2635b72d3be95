"""Security against real processes: the monitoring role's privileges, secrets,
TLS and basic auth from a web config file, what the HTTP endpoint answers to
hostile or broken requests, and label values from the database."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import bcrypt
import psycopg
import pytest
import yaml
from harness import (
    MONITOR_PASSWORD,
    MONITOR_ROLE,
    REPO,
    Database,
    ExporterProcess,
    create_database,
    drop_database,
    run_exporter,
    samples,
    trickle,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from psycopg import errors

from exporter.basicauth import DUMMY_COST_CAP, BasicAuth
from exporter.cache import SnapshotCache
from exporter.cli import configuration_error
from exporter.collector import GovernanceCollector
from exporter.connections import open_pool
from exporter.declaration import NodeDeclaration
from exporter.demo import scenario
from exporter.model import charter_name
from exporter.snapshot import (
    SCHEMA_2026_02,
    SCHEMA_2026_03,
    SCHEMA_2026_08,
    AccountRow,
    ScheduleRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
)
from exporter.source import CollectionError, Source
from exporter.startup import UsageError, load_settings
from exporter.webconfig import RateLimiter, WebConfigError, load_web_config
from exporter.webconfig_file import parse_go_duration

DOC = REPO / "docs" / "least-privilege.md"
# ingestion_cursors (2026-10) and the attribution ledger's tables (2026-08).
LEDGER_TABLES = (
    "ingestion_cursors",
    "epochs",
    "ingestion_receipts",
    "claimant_liabilities",
    "epoch_distribution_manifests",
)
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"


# --- least privilege -----------------------------------------------------------------


@pytest.fixture(scope="module", params=[SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_08])
def role_db(request: pytest.FixtureRequest, pg_admin_url: str) -> Iterator[Database]:
    """One database per schema for the read-only privilege checks (they change nothing)."""
    database = create_database(pg_admin_url, request.param)
    yield database
    drop_database(database)


@pytest.fixture
def cogni(make_database: Callable[[str], Database]) -> Database:
    """A fresh database where the schema version does not matter."""
    return make_database(SCHEMA_2026_03)


def monitor(database: Database) -> psycopg.Connection[Any]:
    """The monitoring role, RLS user set, autocommit: every statement stands alone."""
    conn = psycopg.connect(database.monitor_url, autocommit=True)
    conn.execute("SELECT set_config('app.current_user_id', %s, false)", (scenario.SYSTEM_USER_ID,))
    return conn


def documented_grants() -> dict[str, set[str]]:
    """The table of columns in docs/least-privilege.md: `table` | `col`, `col`."""
    grants: dict[str, set[str]] = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\|\s*`(\w+)`\s*\|([^|]*)\|", line)
        if match:
            grants[match.group(1)] = set(re.findall(r"`(\w+)`", match.group(2)))
    return grants


def test_role_can_select_exactly_the_documented_columns(role_db: Database) -> None:
    with role_db.connect() as admin:
        rows = admin.execute(
            "SELECT table_name, column_name FROM information_schema.column_privileges"
            " WHERE grantee = %s AND privilege_type = 'SELECT'",
            (MONITOR_ROLE,),
        ).fetchall()
        table_grants = admin.execute(
            "SELECT count(*) FROM information_schema.table_privileges WHERE grantee = %s",
            (MONITOR_ROLE,),
        ).fetchone()
    granted: dict[str, set[str]] = {}
    for table, column in rows:
        granted.setdefault(table, set()).add(column)
    documented = documented_grants()
    runs = "schedule_runs" if role_db.schema == SCHEMA_2026_02 else "graph_runs"
    other_runs = "schedule_runs" if runs == "graph_runs" else "graph_runs"
    documented.pop(other_runs)
    if role_db.schema != SCHEMA_2026_08:  # the ledger's tables came in 2026-08
        for table in LEDGER_TABLES:
            documented.pop(table)
    if runs == "schedule_runs":  # no such columns before 2026-03
        documented[runs] -= {"error_code", "requested_by", "run_kind", "started_at"}
    assert granted == documented
    assert table_grants == (0,)  # no whole-table privilege of any kind


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT wallet_address FROM users",
        "SELECT id FROM users",
        "SELECT response_cost_usd FROM charge_receipts",
        "SELECT source_reference FROM charge_receipts",
        "SELECT * FROM billing_accounts",
        "SELECT scopes FROM execution_grants",
        "SELECT label FROM virtual_keys",
        "SELECT owner_user_id, updated_at FROM schedules",
        "SELECT pg_read_file('PG_VERSION')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SET ROLE postgres",
    ],
)
def test_role_cannot_read_what_it_does_not_need(role_db: Database, statement: str) -> None:
    with monitor(role_db) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_accounts SET balance_credits = 1",
        "INSERT INTO charge_receipts (billing_account_id) VALUES ('x')",
        "DELETE FROM schedules",
        "UPDATE schedules SET enabled = false",
        "TRUNCATE execution_grants",
        "CREATE TABLE public.planted (id int)",
        "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "GRANT SELECT ON users TO PUBLIC",
        "ALTER TABLE schedules DISABLE ROW LEVEL SECURITY",
    ],
)
def test_role_cannot_write_even_with_read_write_transactions(
    role_db: Database, statement: str
) -> None:
    """default_transaction_read_only is only a default; privileges are the wall."""
    with monitor(role_db) as conn:
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises((errors.InsufficientPrivilege, errors.WrongObjectType)):
            conn.execute(statement)


def test_role_cannot_stop_other_sessions(role_db: Database) -> None:
    with role_db.connect() as admin, monitor(role_db) as conn:
        pid = admin.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT pg_terminate_backend(%s)", pid)
        assert admin.execute("SELECT 1").fetchone() == (1,)


def test_role_attributes_and_server_side_backstops(role_db: Database) -> None:
    with role_db.connect() as admin:
        role = admin.execute(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication,"
            " rolinherit, rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s",
            (MONITOR_ROLE,),
        ).fetchone()
        member_of = admin.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
            " WHERE r.rolname = %s",
            (MONITOR_ROLE,),
        ).fetchone()
    assert role is not None
    superuser, bypassrls, createdb, createrole, replication, _inherit, limit, config = role
    assert (superuser, bypassrls, createdb, createrole, replication) == (False,) * 5
    assert member_of == (0,)  # not in pg_read_all_data, pg_monitor, ...
    assert 1 <= limit <= 10
    settings_ = dict(item.split("=", 1) for item in config)
    assert settings_["default_transaction_read_only"] == "on"
    assert settings_["statement_timeout"] == "10s"
    assert settings_["idle_in_transaction_session_timeout"] == "30s"


def test_without_the_rls_user_the_role_sees_no_rows(cogni: Database) -> None:
    with cogni.connect() as conn:
        scenario.seed_governance(conn, cogni.schema, datetime.now(UTC), hours=1)
    with psycopg.connect(cogni.monitor_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM billing_accounts").fetchone() == (0,)
        assert conn.execute("SELECT count(id) FROM schedules").fetchone() == (0,)


# --- secrets -------------------------------------------------------------------------


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert MONITOR_PASSWORD not in text


def everything_served(exporter: ExporterProcess) -> list[str]:
    return [exporter.get(path)[1] for path in ("/metrics", "/healthz", "/")]


def up(text: str) -> float:
    return samples(text)["governance_exporter_up"][frozenset()]


def test_libpq_passfile_works_and_the_password_stays_out_of_debug_logs(
    cogni: Database, tmp_path: Path
) -> None:
    with cogni.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    info = psycopg.conninfo.conninfo_to_dict(cogni.monitor_url)
    passfile = tmp_path / "pgpass"
    passfile.write_text(
        f"{info['host']}:{info['port']}:{info['dbname']}:{MONITOR_ROLE}:{MONITOR_PASSWORD}\n"
    )
    passfile.chmod(0o600)
    del info["password"]
    without_password = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})
    assert MONITOR_PASSWORD not in without_password
    env = {"PGPASSFILE": str(passfile), "GOVERNANCE_EXPORTER_LOG_LEVEL": "DEBUG"}
    with run_exporter(without_password, env=env) as exporter:
        served = everything_served(exporter)
        with cogni.connect() as admin:  # make the pool reconnect, and log about it
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'governance-exporter'"
            )
        served += everything_served(exporter)
        log = exporter.log()
    assert up(served[0]) == 1, log[-3000:]
    assert up(served[3]) == 1, log[-3000:]  # the passfile is read again on reconnect
    assert "psycopg.pool" in log  # the pool's own DEBUG lines were written
    assert_no_password(*served, log)


def test_database_url_file_end_to_end(cogni: Database, tmp_path: Path) -> None:
    with cogni.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    secret = tmp_path / "database-url"
    secret.write_text(cogni.monitor_url + "\n")
    secret.chmod(0o400)
    env = {
        "GOVERNANCE_EXPORTER_DATABASE_URL": "",
        "GOVERNANCE_EXPORTER_LOG_LEVEL": "DEBUG",
    }
    with run_exporter("", "--database-url-file", str(secret), env=env) as exporter:
        served = everything_served(exporter)
        log = exporter.log()
        cmdline = Path(f"/proc/{exporter.process.pid}/cmdline").read_bytes().decode()
    assert up(served[0]) == 1
    assert_no_password(*served, log, cmdline)


def test_collection_errors_and_their_causes_never_carry_the_password(
    cogni: Database,
) -> None:
    wrong = cogni.monitor_url.replace(MONITOR_PASSWORD, MONITOR_PASSWORD + "-wrong")
    pool = open_pool(wrong, max_size=1, timeout_seconds=2)
    try:
        source = Source(
            pool,
            account="cogni_system",
            rls_user_id=scenario.SYSTEM_USER_ID,
            window_seconds=3600,
            timeout_seconds=2,
            max_charters=5,
        )
        with pytest.raises(CollectionError) as caught:
            source.read(datetime.now(UTC))
    finally:
        pool.close()
    exc = caught.value
    rendered = "".join(traceback.format_exception(exc))  # the whole chain of causes
    try:
        psycopg.connect(wrong, connect_timeout=2)
    except psycopg.OperationalError as direct:
        rendered += repr(direct) + str(direct) + repr(direct.args)
    assert "password" in rendered  # it does say what went wrong...
    assert_no_password(repr(exc), str(exc), rendered)  # ...but never what the password is


# --- TLS and basic auth --------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def make_ca(directory: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
        "-subj", f"/CN={name}", cwd=directory,
    )  # fmt: skip


def make_signed(directory: Path, name: str, ca: str, san: str) -> None:
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server CA and certificate for 127.0.0.1, a client CA with one client, a stranger."""
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "server-ca")
    make_signed(directory, "server", "server-ca", "IP:127.0.0.1,DNS:localhost")
    make_ca(directory, "client-ca")
    make_signed(directory, "client", "client-ca", "DNS:prometheus")
    make_ca(directory, "stranger-ca")
    make_signed(directory, "stranger", "stranger-ca", "DNS:prometheus")
    return directory


USER, PASSWORD = "prometheus", "s3cret-scrape-pw"


def bcrypt_hash(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request(
    port: int,
    path: str = "/metrics",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 15,
) -> Answer:
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
        if context is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    )
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def client_context(pki: Path, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "server-ca.crt"))
    if cert is not None:
        context.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    return context


def port_of(exporter: ExporterProcess) -> int:
    return int(exporter.url.rsplit(":", 1)[1])


def wait_listening(exporter: ExporterProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert exporter.process.poll() is None, exporter.log()
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port_of(exporter)), timeout=1),
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"exporter not listening:\n{exporter.log()}")


@contextlib.contextmanager
def exporter_with_web_config(
    url: str,
    directory: Path,
    config: dict[str, Any],
    *args: str,
    env: dict[str, str] | None = None,
) -> Iterator[ExporterProcess]:
    path = directory / "web-config.yml"
    path.write_text(yaml.safe_dump(config))
    with run_exporter(url, "--web-config-file", str(path), *args, env=env, wait=False) as exporter:
        wait_listening(exporter)
        yield exporter


def test_tls_and_basic_auth_with_real_requests(cogni: Database, pki: Path) -> None:
    with cogni.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    config = {
        # relative paths: to the web config file's directory, as in exporter-toolkit
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
        "basic_auth_users": {USER: bcrypt_hash(PASSWORD), "other": bcrypt_hash("x")},
    }
    with exporter_with_web_config(cogni.monitor_url, pki, config) as exporter:
        port, tls = port_of(exporter), client_context(pki)
        right = request(port, headers=basic(USER, PASSWORD), context=tls)
        health = request(port, "/healthz", headers=basic(USER, PASSWORD), context=tls)
        refusals = [
            request(port, context=tls),
            request(port, headers=basic(USER, PASSWORD + "x"), context=tls),
            request(port, headers=basic("nobody", PASSWORD), context=tls),
            request(port, headers=basic(USER, "p" * 100), context=tls),  # > bcrypt's 72 bytes
            request(port, headers={"Authorization": "Basic !!!not-base64"}, context=tls),
            request(port, headers={"Authorization": "Bearer " + PASSWORD}, context=tls),
            request(port, "/healthz", context=tls),
        ]
        plain = request(port, headers=basic(USER, PASSWORD))
        again = request(port, headers=basic(USER, PASSWORD), context=tls)
        log = exporter.log()
    assert right.status == 200
    assert up(right.body.decode()) == 1
    assert health.status == 200
    for answer in refusals:
        assert answer.status == 401
        assert answer.headers["www-authenticate"] == 'Basic realm="governance-exporter"'
        assert b"governance_" not in answer.body
    assert plain.status == 400  # plain HTTP to the TLS port: refused, as Go's exporters do
    assert b"HTTPS server" in plain.body
    assert b"governance_" not in plain.body
    assert again.status == 200  # and it still serves
    assert "https://127.0.0.1" in log
    assert PASSWORD not in log
    assert "Traceback" not in log


def test_tls_refuses_versions_below_min_version(pki: Path) -> None:
    config = {
        "tls_server_config": {
            "cert_file": str(pki / "server.crt"),
            "key_file": str(pki / "server.key"),
            "min_version": "TLS13",
        }
    }
    with exporter_with_web_config(UNREACHABLE, pki, config) as exporter:
        old = client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            request(port_of(exporter), context=old)
        assert request(port_of(exporter), "/healthz", context=client_context(pki)).status == 200


def test_client_certificates_verified_against_client_ca(pki: Path) -> None:
    config = {
        "tls_server_config": {
            "cert_file": "server.crt",
            "key_file": "server.key",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": "client-ca.crt",
        }
    }
    with exporter_with_web_config(UNREACHABLE, pki, config) as exporter:
        port = port_of(exporter)
        trusted = request(port, "/healthz", context=client_context(pki, "client"))
        for refused in (client_context(pki), client_context(pki, "stranger")):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                request(port, "/healthz", context=refused)
    assert trusted.status == 200


BAD_WEB_CONFIGS = [
    ("tls_server_config: [unclosed", "not valid YAML at line 1"),
    ("- just\n- a list\n", "expected a mapping"),
    ("tls_server_config: {cert_file: server.crt}\n", "key_file is missing"),
    ("tls_server_config: {cert_file: nope.crt, key_file: nope.key}\n", "cannot load cert_file"),
    ("tls_server_config: {cert_file: server.key, key_file: server.crt}\n", "cannot load"),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS9}\n",
        "tls_server_config.min_version",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key,"
        " client_auth_type: RequireAndVerifyClientCert}\n",
        "needs client_ca_file",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key,"
        " client_auth_type: RequireAnyClientCert, client_ca_file: client-ca.crt}\n",
        "without verifying them",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key,"
        " cipher_suites: [TLS_AES_128_GCM_SHA256]}\n",
        "cipher_suites is not supported",
    ),
    ("basic_auth_users: {prometheus: plaintext-password}\n", "not a bcrypt hash"),
    # the bare $2$ prefix, which the bcrypt library refuses at every login
    ("basic_auth_users: {prometheus: '$2$04$" + "a" * 53 + "'}\n", "not a bcrypt hash"),
    ("basic_auth_user: {prometheus: x}\n", "basic_auth_user: unknown key"),
    ("rate_limit: {interval: 1s, burst: 0}\n", "burst 0 would refuse every request"),
    ("rate_limit: {interval: 10, burst: 5}\n", "rate_limit.interval: expected a duration"),
    ("rate_limit: {interval: 1 second, burst: 5}\n", "is not a duration such as 1s"),
    ("rate_limit: {interval: 1s, burst: 5, per_client: true}\n", "rate_limit.per_client"),
    ("rate_limit: {interval: 1s, burst: -1}\n", "burst must not be negative"),
]


def write_web_config(pki: Path, directory: Path, text: str) -> Path:
    for name in ("server.crt", "server.key", "client-ca.crt"):
        (directory / name).write_bytes((pki / name).read_bytes())
    path = directory / "web.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "expected"), BAD_WEB_CONFIGS)
def test_bad_web_config_is_a_one_line_usage_error(
    pki: Path, tmp_path: Path, text: str, expected: str
) -> None:
    path = write_web_config(pki, tmp_path, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.path == path  # the library names the file; the CLI adds the flag
    assert expected in caught.value.problem or expected in str(caught.value)
    message = configuration_error(caught.value)
    assert message is not None
    assert message.startswith(f"--web-config-file {path}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "expected"), [BAD_WEB_CONFIGS[0], BAD_WEB_CONFIGS[4]])
def test_bad_web_config_stops_the_start_with_one_line_and_status_2(
    pki: Path, tmp_path: Path, text: str, expected: str
) -> None:
    path = write_web_config(pki, tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--web-config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={**os.environ, "GOVERNANCE_EXPORTER_DATABASE_URL": UNREACHABLE},
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"governance-exporter: error: --web-config-file {path}: "
        + (result.stderr.strip().split(": ", 3)[-1])
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr


def test_missing_web_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot read it") as caught:
        load_web_config(tmp_path / "absent.yml")
    assert type(caught.value).__name__ == "WebConfigError"


def test_empty_web_config_means_plain_http_without_auth(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("# nothing configured\n")
    config = load_web_config(path)
    assert config.wrap_socket is None
    assert config.authorize is None


# --- basic auth that guessing cannot turn against the scraper ------------------------


def test_go_durations_as_exporter_toolkit_reads_rate_limit_interval() -> None:
    assert parse_go_duration("1s") == 1.0
    assert parse_go_duration("250ms") == 0.25
    assert parse_go_duration("1m30s") == 90.0
    assert parse_go_duration("1.5h") == 5400.0
    assert parse_go_duration("0") == parse_go_duration(0) == 0.0
    for bad in ("1", 10, "1x", "s", "1s2", True, None):
        with pytest.raises(ValueError, match="duration"):
            parse_go_duration(bad)


def test_rate_limiter_is_a_token_bucket_that_starts_full() -> None:
    now = [100.0]
    limiter = RateLimiter(interval=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.9
    assert not limiter.allow()  # not a whole token yet
    now[0] += 0.1
    assert limiter.allow()
    assert not limiter.allow()
    now[0] += 3600
    assert sum(limiter.allow() for _ in range(10)) == 3  # never more than the burst


def test_unknown_users_are_checked_at_the_configured_cost_capped() -> None:
    """Same cost as the users' hashes (timing does not tell users apart), but a
    costly hash does not make every guessed user name costly. Made without
    hashing at that cost: a cost-31 dummy would take days."""
    cheap = BasicAuth({"a": bcrypt_hash("x", 4), "b": bcrypt_hash("y", 5)})
    costly = BasicAuth({"a": bcrypt_hash("x", 4), "b": bcrypt_hash("y", 4).replace("$04$", "$31$")})
    assert cheap.dummy_cost == 5
    assert costly.dummy_cost == DUMMY_COST_CAP == 12


def test_a_costly_hash_holds_up_neither_the_start_nor_other_logins(
    cogni: Database, tmp_path: Path
) -> None:
    """A cost-20 hash takes about a minute per check: the exporter still listens at
    once, an unknown user is answered after a capped-cost check, and a wrong
    guess for that user is answered 429 within the bounded wait instead of
    holding its request slot for the minute."""
    costly = bcrypt_hash(PASSWORD).replace("$04$", "$20$")
    config = {"basic_auth_users": {USER: costly, "other": bcrypt_hash("x")}}
    with cogni.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    with exporter_with_web_config(cogni.monitor_url, tmp_path, config) as exporter:
        port = port_of(exporter)
        unknown = request(port, headers=basic("nobody", PASSWORD), timeout=10)
        slow = request(port, headers=basic(USER, "wrong"), timeout=10)
        other = request(port, headers=basic("other", "x"), timeout=10)
        log = exporter.log()
    assert unknown.status == 401
    assert slow.status == 429
    assert slow.headers["retry-after"] == "1"
    assert other.status == 200
    assert f"the hash of {USER!r} has cost 20" in log


def test_a_flood_of_wrong_guesses_leaves_the_scraper_served(
    cogni: Database, tmp_path: Path
) -> None:
    """140 clients guess user names (and, one guess in five, the real user's
    password) against a cost-14 hash, more clients than the 128 request slots.
    The scraper, already logged in once, is answered 200 throughout: guesses
    queue for two bcrypt workers or are turned away at once, never filling the
    slots. Loopback only; the flood is bounded in requests and in time."""
    with cogni.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    config = {"basic_auth_users": {USER: bcrypt_hash(PASSWORD, 14)}}
    env = {"GOVERNANCE_EXPORTER_CACHE_SECONDS": "1"}
    directory = tmp_path
    with exporter_with_web_config(cogni.monitor_url, directory, config, env=env) as exporter:
        port = port_of(exporter)
        first = log_in(port)
        flood = Flood(port, clients=140, per_client=25, seconds=12)
        flood.start()
        try:
            time.sleep(2)  # the flood is at full strength
            during = [request(port, headers=basic(USER, PASSWORD), timeout=5) for _ in range(3)]
        finally:
            flood.stop()
        log = exporter.log()
    assert first.status == 200
    assert [answer.status for answer in during] == [200, 200, 200]
    assert up(during[-1].body.decode()) == 1
    assert len(flood.statuses) >= 280, flood.statuses  # it did flood
    assert set(flood.statuses) <= {401, 429}, set(flood.statuses)
    assert 429 in flood.statuses  # the bcrypt queue was full and turned guesses away
    assert "Traceback" not in log


def log_in(port: int, within: float = 30) -> Answer:
    """The first login against a costly hash may outlast the bounded wait (429); its
    check still finishes and is remembered, so a later try, like the next scrape, is 200."""
    deadline = time.monotonic() + within
    while True:
        answer = request(port, headers=basic(USER, PASSWORD), timeout=10)
        if answer.status != 429 or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


class Flood:
    """``clients`` threads, each sending up to ``per_client`` wrong guesses in a row."""

    def __init__(self, port: int, *, clients: int, per_client: int, seconds: float) -> None:
        self.port = port
        self.per_client = per_client
        self.deadline = time.monotonic() + seconds
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._guess, args=(number,), daemon=True)
            for number in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _guess(self, number: int) -> None:
        for attempt in range(self.per_client):
            if self._stop.is_set() or time.monotonic() > self.deadline:
                return
            user = USER if attempt % 5 == 0 else f"guess-{number}-{attempt}"
            try:
                answer = request(self.port, headers=basic(user, f"pw-{attempt}"), timeout=5)
            except OSError as exc:  # a full accept queue: the client's problem, counted
                self.errors.append(type(exc).__name__)
                continue
            self.statuses.append(answer.status)


def test_rate_limit_as_exporter_toolkit_reads_it(cogni: Database, tmp_path: Path) -> None:
    """``rate_limit: {interval, burst}`` at the top of the file: a token bucket over
    every request, the refusals 429. Credentials already proven are not counted,
    so spent guesses do not lock the scraper out."""
    with cogni.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    directory = tmp_path
    open_config = {"rate_limit": {"interval": "1h", "burst": 2}}
    with exporter_with_web_config(UNREACHABLE, directory, open_config) as exporter:
        port = port_of(exporter)
        time.sleep(0.5)
        plain = [request(port, "/healthz").status for _ in range(3)]
    with_auth = {
        "basic_auth_users": {USER: bcrypt_hash(PASSWORD)},
        "rate_limit": {"interval": "1h", "burst": 1},
    }
    with exporter_with_web_config(cogni.monitor_url, directory, with_auth) as exporter:
        port = port_of(exporter)
        scraper = request(port, headers=basic(USER, PASSWORD))  # spends the one token
        guesses = [request(port, headers=basic("nobody", "x")).status for _ in range(3)]
        again = request(port, headers=basic(USER, PASSWORD))
        log = exporter.log()
    # the readiness probe of wait_listening is a bare TCP connect: no request, no token
    assert plain == [200, 200, 429]
    assert scraper.status == 200
    assert guesses == [429, 429, 429]
    assert again.status == 200
    assert "rate limit: bursts of 1 request(s), then one per 3600 s" in log


# --- what the endpoint answers -------------------------------------------------------


@pytest.fixture(scope="module")
def plain_exporter() -> Iterator[ExporterProcess]:
    """An exporter over an unreachable database: the HTTP side is what is tested."""
    with run_exporter(UNREACHABLE, env={"GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "1"}) as e:
        yield e


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_only_get_and_head(plain_exporter: ExporterProcess, method: str) -> None:
    answer = request(port_of(plain_exporter), "/metrics", method=method)
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"
    assert b"governance_" not in answer.body


def test_head_is_get_without_a_body(plain_exporter: ExporterProcess) -> None:
    answer = request(port_of(plain_exporter), "/healthz", method="HEAD")
    assert answer.status == 200
    assert answer.body == b""
    assert int(answer.headers["content-length"]) > 0


@pytest.mark.parametrize(
    "path",
    ["/metrics/", "/exporter/", "/tests", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
     "/metrics%00", "/.git/config", "/healthz/..", "*"],
)  # fmt: skip
def test_unknown_paths_are_404_never_a_listing(plain_exporter: ExporterProcess, path: str) -> None:
    answer = request(port_of(plain_exporter), path)
    assert answer.status in (400, 404)
    assert answer.body in (b"not found\n", b"bad request\n")


def raw_exchange(port: int, payload: bytes, timeout: float = 15) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


MALFORMED = [
    (b"GARBAGE\r\n\r\n", None),
    (b"GET /metrics HTTP/1.1 <script>alert(1)</script>\r\n\r\n", b" 400 "),
    (b"GET /metrics HTTP/9.9\r\n\r\n", b" 505 "),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b" 414 "),
    (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", b" 431 "),
    (b"GET /metrics HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", b" 431 "),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)), None),
    (b"\x00\xff\xfe\r\n\r\n", None),
]


@pytest.mark.parametrize(("payload", "status"), MALFORMED)
def test_malformed_requests_get_a_bare_answer(
    plain_exporter: ExporterProcess, payload: bytes, status: bytes | None
) -> None:
    answer = raw_exchange(port_of(plain_exporter), payload)
    if status is not None:
        assert answer.startswith(b"HTTP/1.1" + status), answer[:200]
    for leak in (b"Traceback", b"<html", b"<script", b'File "', b"governance_", b"aaaa"):
        assert leak not in answer
    assert request(port_of(plain_exporter), "/healthz").status == 200  # still serving
    assert "Traceback" not in plain_exporter.log()


def test_a_flood_of_slow_connections_is_bounded_and_recovers(cogni: Database) -> None:
    """8 connections that send half a request and stall take the 8 slots; 192 more
    are answered 503 at once; the thread count stays bounded; once the request
    deadline cuts the stalled ones the server answers again, while they are still open."""
    env = {
        "GOVERNANCE_EXPORTER_WEB_MAX_REQUESTS": "8",
        "GOVERNANCE_EXPORTER_WEB_REQUEST_TIMEOUT_SECONDS": "5",
        "GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "1",
    }
    with run_exporter(cogni.monitor_url, env=env) as exporter:
        port = port_of(exporter)
        time.sleep(0.5)  # the readiness probe's thread lets go of its slot
        baseline = thread_count(exporter)
        holders = open_stalled(port, 8)
        flood: list[socket.socket] = []
        try:
            time.sleep(0.3)
            busy = request(port, "/healthz")
            flood = open_stalled(port, 192)
            during = thread_count(exporter)
            refused = sum(1 for sock in flood if _answered_503(sock))
            recovered = wait_for_status(port, 200, within=20)
        finally:
            for sock in holders + flood:
                sock.close()
        after = request(port, "/metrics")
        log = exporter.log()
    assert busy.status == 503
    assert busy.headers["retry-after"] == "1"
    assert refused >= 150  # nearly all; a few may find a slot freed meanwhile
    assert during <= baseline + 8 + 2
    assert recovered
    assert after.status == 200
    assert "request slots busy" in log


def test_a_trickling_client_is_cut_off_at_the_deadline(cogni: Database) -> None:
    """One slot, held by a client sending one header byte every 0.3 s: the idle
    timeout never fires, the request deadline does."""
    env = {
        "GOVERNANCE_EXPORTER_WEB_MAX_REQUESTS": "1",
        "GOVERNANCE_EXPORTER_WEB_REQUEST_TIMEOUT_SECONDS": "3",
        "GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "1",
    }
    with run_exporter(cogni.monitor_url, env=env) as exporter:
        port = port_of(exporter)
        time.sleep(0.5)  # the readiness probe's thread lets go of the slot
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        cut = threading.Event()
        trickler = threading.Thread(target=trickle, args=(sock, cut), daemon=True)
        trickler.start()
        time.sleep(0.5)
        blocked = request(port, "/healthz")
        trickler.join(20)
        sock.close()
        served = wait_for_status(port, 200, within=10)
    assert blocked.status == 503
    assert cut.is_set()  # the server hung up on it
    assert served


def thread_count(exporter: ExporterProcess) -> int:
    status = Path(f"/proc/{exporter.process.pid}/status").read_text()
    return int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


def open_stalled(port: int, count: int) -> list[socket.socket]:
    stalled = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        stalled.append(sock)
    return stalled


def _answered_503(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(64).startswith(b"HTTP/1.1 503")
    except OSError:
        return False


def wait_for_status(port: int, status: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if request(port, "/healthz", timeout=5).status == status:
                return True
        time.sleep(0.2)
    return False


# --- label values from the database --------------------------------------------------

NASTY_CHARTERS = [
    'quote"d',
    "back\\slash",
    "new\nline",
    "tab\tand\rreturn",
    "énergie 🚀 ünïcödé",
    "trailing\\",
    '"}\ngovernance_exporter_up 1\n# ',  # an injection attempt
    "x" * 200,
]


def test_label_values_from_the_database_are_escaped_and_bounded(cogni: Database) -> None:
    with cogni.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=100)
        for index, name in enumerate(NASTY_CHARTERS):
            if index % 2:  # half by temporal_schedule_id, half by input message
                scenario.add_schedule(conn, tenant, name, temporal_schedule_id=None, message=name)
            else:
                scenario.add_schedule(conn, tenant, name)
    with run_exporter(cogni.monitor_url) as exporter:
        text = exporter.metrics()
    parsed = samples(text)
    exported = {dict(labels)["charter"] for labels in parsed["governance_charter_configured"]}
    expected = {charter_name(f"governance:{n}", None, "unused") for n in NASTY_CHARTERS}
    assert expected <= exported
    assert 'quote"d' in exported
    assert "back\\slash" in exported
    assert "new_line" in exported  # control characters replaced, not passed through
    assert "énergie 🚀 ünïcödé" in exported
    assert all(len(name) <= 64 for name in exported)
    assert parsed["governance_exporter_up"][frozenset()] == 1  # the injection did not land
    assert text.count("\ngovernance_exporter_up ") == 1
    promtool = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr


def test_charter_cap_holds_at_the_http_level_with_a_log_line(cogni: Database) -> None:
    with cogni.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=100)
        for index in range(30):
            scenario.add_schedule(conn, tenant, f"extra-{index:02d}")
    env = {"GOVERNANCE_EXPORTER_MAX_CHARTERS": "5"}
    with run_exporter(cogni.monitor_url, env=env) as exporter:
        parsed = samples(exporter.metrics())
        log = exporter.log()
    configured = [dict(k) for k, v in parsed["governance_charter_configured"].items() if v == 1]
    assert len(configured) == 5
    assert len(parsed["governance_charter_configured"]) <= 5 + 4  # plus expected, missing ones
    assert "more than 5 governance schedules" in log


def test_non_utf8_bytes_in_a_sql_ascii_database_do_not_break_the_scrape(
    pg_admin_url: str,
) -> None:
    """A SQL_ASCII database stores any bytes; psycopg then returns bytes, not str."""
    database = make_sql_ascii_database(pg_admin_url)
    try:
        with database.connect() as conn:
            seed_raw_tenant(conn, b'governance:caf\xe9\xff"x\\')
        with run_exporter(database.monitor_url) as exporter:
            status, body = exporter.get("/metrics")
            log = exporter.log()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
    assert status == 200, log[-2000:]
    parsed = samples(body)
    assert parsed["governance_exporter_up"][frozenset()] == 1
    charters = {dict(k)["charter"] for k in parsed["governance_charter_configured"]}
    assert any(name.startswith("caf") for name in charters)


def make_sql_ascii_database(admin_url: str) -> Database:
    from harness import ROLE_SCRIPT  # noqa: PLC0415

    name = f"cogni_sql_ascii_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' TEMPLATE template0"
            " LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    database = Database(admin_url, name, SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.load_schema(conn, SCHEMA_2026_03)
        conn.execute(ROLE_SCRIPT.read_text().encode())
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(MONITOR_ROLE), psycopg.sql.Literal(MONITOR_PASSWORD)
            )
        )
    return database


def seed_raw_tenant(conn: psycopg.Connection[Any], temporal_schedule_id: bytes) -> None:
    """The system tenant and one schedule, written with SQL only (text comes back as bytes)."""
    user, account = scenario.SYSTEM_USER_ID, scenario.SYSTEM_ACCOUNT_ID
    conn.execute("INSERT INTO users (id) VALUES (%s)", (user,))
    conn.execute(
        "INSERT INTO billing_accounts (id, owner_user_id, is_system_tenant, slug, balance_credits)"
        " VALUES (%s, %s, true, 'cogni_system', 100)",
        (account, user),
    )
    conn.execute(
        "INSERT INTO execution_grants (user_id, billing_account_id, scopes)"
        " VALUES (%s, %s, ARRAY['graph:execute'])",
        (user, account),
    )
    conn.execute(
        b"INSERT INTO schedules (owner_user_id, execution_grant_id, graph_id, input, cron,"
        b" timezone, temporal_schedule_id) SELECT user_id, id, 'sandbox:openclaw', '{}',"
        b" '0 * * * *', 'UTC', '" + temporal_schedule_id.replace(b"'", b"''") + b"'"
        b" FROM execution_grants"
    )


# --- the same, as a property over the exposition -----------------------------------


class FixedSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def read(self, now: datetime) -> Snapshot:
        return self.snapshot


def snapshot_with(names: list[str]) -> Snapshot:
    now = datetime(2026, 2, 15, 12, tzinfo=UTC)
    schedules = tuple(
        ScheduleRow(f"id-{i}", f"governance:{name}", None, "0 * * * *", "UTC", True, None)
        for i, name in enumerate(names)
    )
    return Snapshot(
        taken_at=now,
        window_seconds=86400,
        account='acc"ount\\\n',
        schema=SchemaInfo(SCHEMA_2026_03, "graph_runs", True),
        account_row=AccountRow("a", 1),
        spend=SpendRow(Decimal(0), 0, None),
        schedules=schedules,
        schedules_truncated=False,
        run_counts=(),
        last_outcomes=(),
        recent_runs=(),
    )


def parse_charters(snapshot: Snapshot) -> tuple[set[str], set[str]]:
    registry = CollectorRegistry()
    registry.register(GovernanceCollector(SnapshotCache(FixedSource(snapshot)), NodeDeclaration()))
    parsed = samples(generate_latest(registry).decode())
    labels = [dict(k) for k in parsed["governance_charter_configured"]]
    return {d["charter"] for d in labels}, {d["account"] for d in labels}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=5))
def test_any_charter_name_survives_the_exposition(names: list[str]) -> None:
    charters, accounts = parse_charters(snapshot_with(names))
    expected = {charter_name(f"governance:{n}", None, f"id-{i}") for i, n in enumerate(names)}
    assert charters == expected
    assert accounts == {'acc"ount\\\n'}


def pin_snippet() -> str:
    text = DOC.read_text()
    start = text.index("-- pin governance_exporter")
    return text[start : text.index("```", start)]


def test_documented_pin_keeps_the_role_to_the_system_principal(cogni: Database) -> None:
    with cogni.connect() as conn:
        scenario.seed_governance(conn, cogni.schema, datetime.now(UTC), hours=1)
        other = scenario.seed_other_tenant(conn, cogni.schema, 1, datetime.now(UTC))
        # a manual run: no schedule, visible to the user who requested it
        conn.execute(
            "INSERT INTO graph_runs (run_id, requested_by, status, error_message)"
            " VALUES ('manual-1', %s, 'error', 'their private error')",
            (other.user_id,),
        )
    count_other = (
        "SELECT (SELECT count(balance_credits) FROM billing_accounts),"
        " (SELECT count(cron) FROM schedules),"
        " (SELECT count(error_message) FROM graph_runs WHERE schedule_id IS NULL)"
    )
    with monitor(cogni) as conn:
        conn.execute("SELECT set_config('app.current_user_id', %s, false)", (other.user_id,))
        before = conn.execute(count_other).fetchone()
    with cogni.connect() as admin:
        admin.execute(pin_snippet().encode())
    with monitor(cogni) as conn:
        conn.execute("SELECT set_config('app.current_user_id', %s, false)", (other.user_id,))
        after = conn.execute(count_other).fetchone()
    with run_exporter(cogni.monitor_url) as exporter:
        parsed = samples(exporter.metrics())
    assert before == (1, 1, 1)  # without the pin, the role can look at another tenant
    assert after == (0, 0, 0)
    assert parsed["governance_exporter_up"][frozenset()] == 1
    assert parsed["governance_credit_spent_credits"][frozenset({("account", "cogni_system")})] > 0


def test_request_deadline_must_leave_room_for_the_collection() -> None:
    overrides = {
        "database_url": UNREACHABLE,
        "statement_timeout_seconds": 10,
        "web_request_timeout_seconds": 5,
    }
    with pytest.raises(UsageError, match="must be above --statement-timeout-seconds"):
        load_settings(overrides)
    overrides["web_request_timeout_seconds"] = 15
    assert load_settings(overrides).web_max_requests == 128
