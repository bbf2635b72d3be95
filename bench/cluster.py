# ruff: noqa: S108
"""A persistent PostgreSQL 15 cluster for the benchmark, and its databases.

The cluster lives in ``$BENCH_PGROOT`` (default ``/tmp/govexp-bench-pg``) so that
generated data survives between runs. It is built with the same local binaries
and the same approach as ``tests/harness.py`` (``initdb`` run as the ``postgres``
user when we are root), plus a configuration sized for tens of millions of rows
and ``pg_stat_statements``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from exporter.demo import scenario  # noqa: E402
from exporter.demo.localpg import find_bindir  # noqa: E402
from tests.harness import (  # noqa: E402
    MONITOR_PASSWORD,
    MONITOR_ROLE,
    ROLE_SCRIPT,
    url_with,
)

ADMIN_PASSWORD = "bench-admin-pw"  # noqa: S105 - a throwaway local cluster

ROOT = Path(os.environ.get("BENCH_PGROOT", "/tmp/govexp-bench-pg"))
PORT = int(os.environ.get("BENCH_PGPORT", "55432"))

SERVER_SETTINGS = {
    "shared_buffers": "4GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "2GB",
    "max_wal_size": "20GB",
    "checkpoint_timeout": "30min",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "autovacuum": "on",
    "track_io_timing": "on",
    "pg_stat_statements.track": "top",
    "pg_stat_statements.max": "5000",
    "max_parallel_maintenance_workers": "2",
}


@dataclass
class LocalPostgres:
    """A persistent cluster run by pg_ctl: it outlives the command that started it,
    unlike exporter.demo.localpg's child-process clusters (the data is expensive to make)."""

    bindir: Path
    root: Path
    port: int
    as_postgres_user: bool
    _started: bool = field(default=False)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{ADMIN_PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres_user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr}\n{tail}")

    def init(self) -> None:
        if self.as_postgres_user:
            shutil.chown(self.root, "postgres", "postgres")
        pwfile = self.root / "pwfile"
        pwfile.write_text(ADMIN_PASSWORD + "\n")
        if self.as_postgres_user:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            "initdb",
            f"--pgdata={self.datadir}",
            "--username=postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--no-sync",
            "--locale=C",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
            " -c shared_preload_libraries=pg_stat_statements"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._started = True

    def stop(self, mode: str = "fast") -> None:
        if self._started:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")
            self._started = False


def server() -> LocalPostgres:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries found (looked for /usr/lib/postgresql/*/bin)")
    return LocalPostgres(bindir, ROOT, PORT, as_postgres_user=os.geteuid() == 0)


def ensure_running() -> LocalPostgres:
    """Init the cluster on first use, start it if it is not running; idempotent."""
    pg = server()
    fresh = not (pg.datadir / "PG_VERSION").exists()
    if fresh:
        ROOT.mkdir(parents=True, exist_ok=True)
        pg.init()
        with (pg.datadir / "postgresql.conf").open("a") as conf:
            for key, value in SERVER_SETTINGS.items():
                conf.write(f"{key} = '{value}'\n")
    if not (pg.datadir / "postmaster.pid").exists():
        pg.start()
    pg._started = True
    return pg


def admin_url() -> str:
    return str(server().admin_url)


def db_url(name: str) -> str:
    return str(url_with(admin_url(), dbname=name))


def monitor_url(name: str) -> str:
    return str(url_with(db_url(name), user=MONITOR_ROLE, password=MONITOR_PASSWORD))


def connect(name: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(db_url(name), autocommit=True, **kwargs)


def database_exists(name: str) -> bool:
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def create_database(name: str, schema: str) -> None:
    """Drop and create ``name`` with a Cogni schema, the monitoring role and
    pg_stat_statements (what tests/harness.py ``create_database`` does, with a
    fixed name)."""
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with connect(name) as conn:
        scenario.load_schema(conn, schema)
        conn.execute(ROLE_SCRIPT.read_text().encode())
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(MONITOR_ROLE), sql.Literal(MONITOR_PASSWORD)
            )
        )
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        print(ensure_running().admin_url)
    elif command == "stop":
        pg = ensure_running()
        pg.stop("fast")
    else:
        raise SystemExit("usage: cluster.py start|stop")
