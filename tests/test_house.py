"""The house: one verdict for the page, `check` and the alerts; the product apart from the demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import REPO, Database, run_exporter

from exporter.demo import scenario
from exporter.settings import FEBRUARY_CHARTERS
from exporter.snapshot import SCHEMA_2026_03

# The layout table, one line per module, lives with the rest of the contributor's reference.
DEVELOPMENT = (REPO / "docs" / "development.md").read_text(encoding="utf-8")


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%MZ")


def _gateway(directory: Path, now: datetime, *, allow_runs: bool, heartbeat_age: timedelta) -> None:
    """A budget header and four heartbeats in the form the gateway writes them."""
    (directory / "_budget_header.md").parent.mkdir(parents=True, exist_ok=True)
    (directory / "_budget_header.md").write_text(
        "---\ntype: budget_header\nowner: GOVERN\n"
        f"updated_at: {_stamp(now - timedelta(minutes=10))}\nsource_of_truth: ledger\n---\n\n"
        f"allow_runs: {'true' if allow_runs else 'false'}\nmax_tokens_per_charter_run: 8000\n"
        "max_tool_calls_per_charter_run: 20\nmax_brain_spawns_per_hour: 4\n"
        "budget_status: ok # ok | warn | critical\nburn_rate_trend: flat # down | flat | up\n"
        'notes: "" # optional, <= 1 line\n',
        encoding="utf-8",
    )
    for charter in FEBRUARY_CHARTERS:
        folder = directory / charter.upper()
        folder.mkdir(exist_ok=True)
        (folder / "heartbeat.md").write_text(
            f"run_at: {_stamp(now - heartbeat_age)}\ncharter: {charter.upper()}\n"
            "focus: budget\ndecision: action\n",
            encoding="utf-8",
        )


def _page_and_check(database: Database, memory: Path) -> tuple[str, int, dict[str, object]]:
    env = {"GOVERNANCE_EXPORTER_MEMORY_DIR": str(memory)}
    with run_exporter(database.monitor_url, env=env) as exporter:
        status, page = exporter.get("/")
    assert status == 200
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
        env={
            **clean,
            "GOVERNANCE_EXPORTER_DATABASE_URL": database.monitor_url,
            "GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ",".join(FEBRUARY_CHARTERS),
            **env,
        },
    )
    return page, result.returncode, json.loads(result.stdout)


def _overall(page: str) -> str:
    match = re.search(r'id="overall" class="h-(\w+)"', page)
    assert match is not None
    return match.group(1)


def test_a_closed_gate_and_stale_heartbeats_are_yellow_on_the_page_and_in_check(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    """Before, the page said GREEN beside a red CLOSED badge and check exited 0 while
    GovernanceBudgetGateClosed and GovernanceHeartbeatStale fired."""
    database = make_database(SCHEMA_2026_03)
    now = datetime.now(UTC)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, now)
    memory = tmp_path / "memory"
    _gateway(memory, now, allow_runs=True, heartbeat_age=timedelta(minutes=20))
    page, code, report = _page_and_check(database, memory)
    assert (_overall(page), code, report["problems"]) == ("green", 0, [])

    _gateway(memory, now, allow_runs=False, heartbeat_age=timedelta(days=3))
    page, code, report = _page_and_check(database, memory)
    alerts = {(p["subject"], p["alert"]) for p in report["problems"]}  # type: ignore[attr-defined]
    assert ("budget gate", "GovernanceBudgetGateClosed") in alerts
    assert {(c, "GovernanceHeartbeatStale") for c in FEBRUARY_CHARTERS} <= alerts
    assert (_overall(page), code, report["status"]) == ("yellow", 1, "yellow")
    assert "GovernanceBudgetGateClosed" in page


def _imported_after(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    return {m for m in result.stdout.split() if m.startswith("exporter")}


def test_serve_and_check_import_none_of_the_demo() -> None:
    for command in ("serve", "check"):
        loaded = _imported_after(
            f"from exporter import cli; cli.build_parser(cli.chosen_command(['{command}']))\n"
            f"import exporter.{command}"
        )
        assert f"exporter.{command}" in loaded
        assert not {m for m in loaded if m.startswith("exporter.demo")}, loaded
    # The CLI itself imports only the chosen command.
    loaded = _imported_after(
        "from exporter import cli; cli.build_parser(cli.chosen_command(['check']))"
    )
    assert "exporter.check" in loaded
    assert "exporter.serve" not in loaded
    assert "exporter.app" not in loaded


def test_every_module_is_in_the_layout_table() -> None:
    layout = DEVELOPMENT[DEVELOPMENT.index("## Layout") :]
    for path in sorted((REPO / "exporter").glob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        assert f"`exporter/{path.name}`" in layout, path.name
    assert "`exporter/demo/`" in layout
    # The model and the policy are packages split by concern: each part is listed too.
    for package in ("model", "policy"):
        assert f"`exporter/{package}/`" in layout, package
        for path in sorted((REPO / "exporter" / package).glob("*.py")):
            if path.name != "__init__.py":
                assert f"`exporter/{package}/{path.name}`" in layout, path.name
