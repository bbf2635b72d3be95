"""The gateway's memory files read by the running exporter; the parsers are in tests/unit/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import Database, run_exporter, samples

from exporter.demo import scenario
from exporter.words import format_duration

HEARTBEAT = """\
# Heartbeat

run_at: 2026-02-15T12:00Z
charter: GOVERN
focus: keep the lights on
decision: no-op
no_op_reason: wip_full
expected_outcome: metric=open_prs, target=5, by_date=2026-02-20
cost_guard: max_tokens=20000, max_tool_calls=30, escalation_requested=false
evidence: see PR list
"""

BUDGET = """\
---
type: budget_header
owner: GOVERN
updated_at: 2026-02-15T11:30Z
source_of_truth: billing
---

allow_runs: true
max_tokens_per_charter_run: 20000
max_tool_calls_per_charter_run: 30
max_brain_spawns_per_hour: 4
budget_status: warn
burn_rate_trend: up
notes: cutting back
"""


# The files in the form the gateway's own templates write them (Cogni-DAO/node-template,
# services/sandbox-openclaw/gateway-workspace/memory-templates/, and the heartbeat
# contract in .openclaw/skills/gov-core/SKILL.md): the same keys, front matter, heading,
# blank lines, inline comments and unindented sub-keys; the values are our own.
def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def memory(tmp_path: Path) -> Path:
    directory = tmp_path / "memory"
    write(directory / "GOVERN" / "heartbeat.md", HEARTBEAT)
    write(directory / "_budget_header.md", BUDGET)
    return directory


def status_of(
    values: dict[str, dict[frozenset[tuple[str, str]], float]], name: str, **labels: str
) -> str:
    (current,) = [
        dict(k)["status"]
        for k, v in values[name].items()
        if v == 1 and all(dict(k).get(n) == x for n, x in labels.items())
    ]
    return current


def test_memory_collector_off_by_default_and_never_hides_database_metrics(
    database: Database, memory: Path
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=5)
    with run_exporter(database.monitor_url) as exporter:
        assert "governance_heartbeat" not in exporter.metrics()
    write(memory / "COMMUNITY" / "heartbeat.md", b"\x00\xff garbage")
    with run_exporter(
        database.monitor_url, env={"GOVERNANCE_EXPORTER_MEMORY_DIR": str(memory)}
    ) as exporter:
        values = samples(exporter.metrics())
    assert values["governance_exporter_up"][frozenset()] == 1
    assert (
        values["governance_credit_balance_credits"][frozenset({("account", "cogni_system")})] == 5
    )
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "ok"
    assert (
        status_of(values, "governance_heartbeat_file_status", charter="community") == "incomplete"
    )


def test_status_page_shows_the_gate_and_heartbeats(database: Database, tmp_path: Path) -> None:
    """The page reads the same files, escapes them, and says CLOSED for a closed gate."""
    memory = tmp_path / "memory"
    now = datetime.now(UTC)
    write(
        memory / "GOVERN" / "heartbeat.md",
        HEARTBEAT.replace(
            "2026-02-15T12:00Z", (now - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
    write(memory / "COMMUNITY" / "heartbeat.md", "run_at: never\ndecision: <script>\n")
    write(
        memory / "_budget_header.md",
        BUDGET.replace("allow_runs: true", "allow_runs: false").replace(
            "2026-02-15T11:30Z", now.strftime("%Y-%m-%dT%H:%MZ")
        ),
    )
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=5)
    with run_exporter(
        database.monitor_url, env={"GOVERNANCE_EXPORTER_MEMORY_DIR": str(memory)}
    ) as exporter:
        status, page = exporter.get("/")
    assert status == 200
    gate = section(page, "budget-gate")
    assert "CLOSED" in gate
    assert "<span>warn</span>" in gate
    assert "<span>up</span>" in gate
    beats = section(page, "heartbeats")
    assert f"{format_duration(20 * 60)} ago" in beats
    assert "<span>wip_full</span>" in beats
    assert beats.count(">malformed<") == 1  # community's file
    assert beats.count(">missing<") == 2  # engineering and sustainability have no folder
    assert "<script>" not in page


def section(page: str, key: str) -> str:
    start = page.index(f'<section id="{key}">')
    return page[start : page.index("</section>", start)]


def test_status_page_without_a_memory_dir_has_no_gateway_section(database: Database) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=5)
    with run_exporter(database.monitor_url) as exporter:
        page = exporter.get("/")[1]
    assert 'id="budget-gate"' not in page
    assert 'id="heartbeats"' not in page
