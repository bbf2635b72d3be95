"""The real exporter process over HTTP: start-up, the database going away and
coming back, what it logs, and a scrape checked by promtool."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import (
    MONITOR_PASSWORD,
    REPO,
    Database,
    Ticks,
    create_database,
    free_port,
    local_postgres,
    run_exporter,
    samples,
)
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from exporter.cache import SnapshotCache
from exporter.collector import GovernanceCollector
from exporter.connections import open_pool
from exporter.declaration import NodeDeclaration
from exporter.demo import scenario
from exporter.settings import FEBRUARY_CHARTERS
from exporter.snapshot import SCHEMA_2026_03
from exporter.source import Source

GOLDEN = Path(__file__).parent / "golden"


def up(text: str) -> float:
    return samples(text)["governance_exporter_up"][frozenset()]


def test_serves_metrics_healthz_and_refuses_the_rest(database: Database) -> None:
    with database.connect() as conn:
        scenario.seed_governance(conn, database.schema, datetime.now(UTC), hours=2)
    with run_exporter(database.monitor_url) as exporter:
        assert up(exporter.metrics()) == 1
        status, body = exporter.get("/healthz")
        assert status == 200
        assert '"last_collection_ok": true' in body
        assert exporter.get("/nope")[0] == 404
        assert exporter.get("/metrics/../etc/passwd")[0] == 404
        log = exporter.log()
    assert "watching account 'cogni_system'" in log
    assert "governance_exporter@127.0.0.1" in log


def _help(*command: str, optimize: bool) -> str:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("PYTHONOPTIMIZE", None)
    if optimize:
        env["PYTHONOPTIMIZE"] = "2"
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _metric_headers(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith(("# HELP", "# TYPE"))]


def test_the_images_optimize_level_changes_neither_help_nor_metrics(database: Database) -> None:
    """The image runs with PYTHONOPTIMIZE=2 (no docstrings, no asserts: less memory).
    Nothing may depend on them: every --help and every family's HELP and TYPE line
    are the same as without it, and the scrape is healthy."""
    for command in ((), ("serve",), ("check",), ("demo",)):
        assert _help(*command, optimize=True) == _help(*command, optimize=False), command
    with database.connect() as conn:
        scenario.seed_governance(conn, database.schema, datetime.now(UTC), hours=2)
    headers = []
    for env in ({"PYTHONOPTIMIZE": "2"}, {}):
        with run_exporter(database.monitor_url, env=env) as exporter:
            text = exporter.metrics()
            assert up(text) == 1
            headers.append(_metric_headers(text))
    assert len(headers[0]) > 50
    assert headers[0] == headers[1]


def test_starts_with_the_database_down_and_recovers_without_restart(tmp_path: Path) -> None:
    with local_postgres() as server:
        assert server is not None
        database = create_database(server.admin_url, SCHEMA_2026_03)
        with database.connect() as conn:
            scenario.seed_governance(conn, SCHEMA_2026_03, datetime.now(UTC), hours=2)
        server.stop()
        # The cache is off: each scrape below must read the database it describes.
        with run_exporter(
            database.monitor_url, env={"GOVERNANCE_EXPORTER_CACHE_SECONDS": "0"}
        ) as exporter:
            started = time.monotonic()
            first = exporter.metrics()
            assert time.monotonic() - started < 10  # within the deadline, not hung
            assert up(first) == 0
            assert "governance_credit_balance_credits" not in first

            server.start()
            assert up(exporter.metrics()) == 1  # the next scrape after it is back

            server.stop("immediate")  # restarted under it: pooled connections broken
            assert up(exporter.metrics()) == 0
            server.start()
            assert up(exporter.metrics()) == 1
            log = exporter.log()
    assert "collection failed (host_unreachable)" in log
    assert "database readable again" in log
    assert MONITOR_PASSWORD not in log


def test_password_never_appears_in_logs_metrics_or_health(database: Database) -> None:
    wrong = database.monitor_url.replace(MONITOR_PASSWORD, MONITOR_PASSWORD + "-wrong")
    with run_exporter(wrong, env={"GOVERNANCE_EXPORTER_LOG_LEVEL": "DEBUG"}) as exporter:
        metrics = exporter.metrics()
        health = exporter.get("/healthz")[1]
        log = exporter.log()
    assert up(metrics) == 0
    assert "password authentication failed" in log
    for text in (metrics, health, log):
        assert MONITOR_PASSWORD not in text


def test_promtool_accepts_a_real_scrape(database: Database) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: .ci/run installs Debian's prometheus package"
    with database.connect() as conn:
        scenario.seed_incident(conn, database.schema, datetime.now(UTC))
    with run_exporter(database.monitor_url) as exporter:
        text = exporter.metrics()
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""  # no lint findings at all


def _exposition(url: str) -> str:
    pool = open_pool(url, max_size=1, timeout_seconds=1)
    try:
        source = Source(
            pool,
            account="cogni_system",
            rls_user_id=scenario.SYSTEM_USER_ID,
            window_seconds=86400,
            timeout_seconds=1,
            max_charters=50,
        )
        fixed = datetime(2026, 2, 15, 12, 7, tzinfo=UTC)
        snapshots = SnapshotCache(source, clock=lambda: fixed, monotonic=Ticks())
        registry = CollectorRegistry()
        registry.register(GovernanceCollector(snapshots, NodeDeclaration(FEBRUARY_CHARTERS)))
        return generate_latest(registry).decode()
    finally:
        pool.close()


def _check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run pytest --update-golden"
    assert text == path.read_text(), "exposition changed; if intended: pytest --update-golden"


def test_golden_exposition_of_the_real_incident(
    make_database: Callable[[str], Database], update_golden: bool
) -> None:
    """Balance 0 and no schedule rows (2026-02-15): the whole scrape, byte for byte."""
    database = make_database("2026-02")
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=0)
    _check_golden("incident-2026-02-15.prom", _exposition(database.monitor_url), update_golden)


def test_golden_exposition_when_the_database_is_unreachable(update_golden: bool) -> None:
    text = _exposition("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    _check_golden("database-unreachable.prom", text, update_golden)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


# --- Ctrl-C at any moment --------------------------------------------------------------


# Loaded by the child through PYTHONPATH, after Python's own start-up (``site`` and
# the .pth files of an editable install, where no program can catch a Ctrl-C): it
# marks the moment ``python -m exporter`` starts to import ``exporter.__main__``,
# whose first lines catch a Ctrl-C. Moments are counted from there, so a busy
# machine cannot push one back into the start-up.
_MARK_MAIN = """\
import os
import sys


class _MarkMain:
    def find_spec(self, name, path=None, target=None):
        if name == "exporter.__main__":
            with open(os.environ["GOVEXP_TEST_MAIN_MARK"], "w"):
                pass
        return None


sys.meta_path.insert(0, _MarkMain())
"""


def _wait_for(mark: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not mark.exists():
        assert process.poll() is None, "exited before importing exporter.__main__"
        assert time.monotonic() < deadline, "exporter.__main__ not imported within 30 s"
        time.sleep(0.002)


@contextlib.contextmanager
def silent_database() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a collection
    then waits there for its timeout, so a Ctrl-C finds the command mid-collection."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"postgresql://nobody@127.0.0.1:{listener.getsockname()[1]}/none"


def interrupt(
    command: str, database_url: str, moment: float | str, workdir: Path
) -> tuple[int, str]:
    """Start ``python -m exporter <command>``, send SIGINT ``moment`` seconds after it
    starts to import ``exporter.__main__`` (or once it serves, for "serving"), and
    let it finish."""
    port = free_port()
    hook = workdir / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_MARK_MAIN)
    mark = workdir / f"main-imported-{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")},
        "GOVERNANCE_EXPORTER_DATABASE_URL": database_url,
        "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "GOVEXP_TEST_MAIN_MARK": str(mark),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH", "")])),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        if moment == "serving":
            _wait_serving(port, process)
        else:
            assert isinstance(moment, float)
            _wait_for(mark, process)
            time.sleep(moment)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stderr


def _wait_serving(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "exited before serving"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return
        time.sleep(0.05)
    raise AssertionError("not serving within 20 s")


@pytest.mark.parametrize("command", ["serve", "check"])
def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(command: str, tmp_path: Path) -> None:
    """From the first hundredth of a second of the command's own code (imports,
    settings, building the app) to serving or waiting on the database: exit 130
    (what a shell reports for Ctrl-C; an interrupted start-up is not a success)
    and no traceback."""
    moments: list[float | str] = [0.01, 0.05, 0.25, 0.6, 1.5]
    if command == "serve":
        moments.append("serving")
    with silent_database() as url:
        outcomes = {moment: interrupt(command, url, moment, tmp_path) for moment in moments}
    for moment, (returncode, stderr) in outcomes.items():
        assert "Traceback" not in stderr, (moment, stderr)
        assert returncode == 130, (moment, returncode, stderr)
    if command == "serve":
        assert "stopped" in outcomes["serving"][1]
