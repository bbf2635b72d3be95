"""Real processes for tests: a PostgreSQL server, fresh databases, the exporter.

The server comes from, in order: a URL in GOVERNANCE_EXPORTER_TEST_ADMIN_URL
(a superuser URL of a server you run), local PostgreSQL binaries (run as the
``postgres`` user when the tests run as root, since initdb refuses root), or a
testcontainers PostgreSQL where a Docker engine answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from exporter.demo import scenario
from exporter.demo.localpg import LocalPostgres, PostgresNotFound, free_port, throwaway_postgres
from exporter.settings import FEBRUARY_CHARTERS

REPO = Path(__file__).resolve().parent.parent
MONITOR_ROLE = "governance_exporter"
MONITOR_PASSWORD = "monitor-pw-Zq8xT3"  # distinctive, so tests can look for leaks
SERVER_SETTINGS = {"max_connections": "200", "shared_preload_libraries": "pg_stat_statements"}
ROLE_SCRIPT = REPO / "sql" / "monitoring-role.sql"


@contextlib.contextmanager
def local_postgres() -> Iterator[LocalPostgres | None]:
    """A throwaway cluster from local binaries (None when there are none), with
    pg_stat_statements loaded; ``stop(mode)`` and ``start()`` at will."""
    try:
        with throwaway_postgres(settings=SERVER_SETTINGS) as server:
            yield server
    except PostgresNotFound:
        yield None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a superuser URL; see the module doc for where the server comes from."""
    given = os.environ.get("GOVERNANCE_EXPORTER_TEST_ADMIN_URL")
    if given:
        yield given
        return
    with local_postgres() as server:
        if server is not None:
            yield server.admin_url
            return
    yield from _container_postgres()


def _container_postgres() -> Iterator[str]:
    import pytest  # noqa: PLC0415 - only this fallback skips

    try:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415
    except ImportError:  # pragma: no cover - testcontainers is a test dependency
        pytest.skip("no PostgreSQL binaries and testcontainers is not installed")
    try:
        container = PostgresContainer("postgres:15-alpine", driver=None)
        container.start()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL binaries here and no Docker engine answers ({exc})")
    try:
        yield container.get_connection_url()
    finally:
        container.stop()


def url_with(url: str, **params: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.update(params)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


@dataclass
class Database:
    """A fresh database with one Cogni schema loaded and the monitoring role set up."""

    admin_url: str
    name: str
    schema: str

    @property
    def url(self) -> str:
        return url_with(self.admin_url, dbname=self.name)

    @property
    def monitor_url(self) -> str:
        return url_with(self.url, user=MONITOR_ROLE, password=MONITOR_PASSWORD)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)


def create_database(admin_url: str, schema: str) -> Database:
    name = f"cogni_{schema.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = Database(admin_url, name, schema)
    with database.connect() as conn:
        scenario.load_schema(conn, schema)
        conn.execute(ROLE_SCRIPT.read_text().encode())
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(MONITOR_ROLE), sql.Literal(MONITOR_PASSWORD)
            )
        )
    return database


def drop_database(database: Database) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
        )


# --- the exporter as a real process -------------------------------------------------


@dataclass
class ExporterProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def get(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = 15
    ) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, body
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_exporter(
    database_url: str, *args: str, env: dict[str, str] | None = None, wait: bool = True
) -> Iterator[ExporterProcess]:
    """Start ``python -m exporter`` on a free port; the URL goes in the environment,
    as it should in production (never on the command line, where ps shows it)."""
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="govexp-log-"))
    log_path = log_dir / "exporter.log"
    full_env = {
        **os.environ,
        "GOVERNANCE_EXPORTER_DATABASE_URL": database_url,
        "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        # Each scrape reads the database, so a test sees the state it just made;
        # the cache itself is tested in test_exporter.py.
        "GOVERNANCE_EXPORTER_CACHE_SECONDS": "0",
        # Most scenarios are nodes of February 2026, whose operator names the four
        # charters it runs; a test of today's node passes its own settings in env.
        "GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ",".join(FEBRUARY_CHARTERS),
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
        )
    handle = ExporterProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        if wait:
            wait_for_http(handle.url + "/healthz", process, log_path)
        yield handle
    finally:
        stop_process(process)
        shutil.rmtree(log_dir, ignore_errors=True)


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"exporter exited with {process.returncode}:\n{log_path.read_text()}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"exporter did not answer {url} within {timeout} s:\n{log_path.read_text()}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def samples(text: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """An exposition parsed by client_python's own parser: name → labels → value."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    parsed: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return parsed


class Ticks:
    """A monotonic clock that advances 0.25 s per reading."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def trickle(sock: socket.socket, cut: threading.Event) -> None:
    """A slowloris: one byte every 0.3 s (18 s at most); ``cut`` is set when the
    server hangs up on it."""
    try:
        for _ in range(60):
            sock.sendall(b"x")
            time.sleep(0.3)
    except OSError:
        cut.set()
