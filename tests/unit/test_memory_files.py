"""The gateway's memory files, read from a real directory: the parsers and what a scrape shows.

The texts here are also in tests/test_memory.py, whose tests run the exporter over them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from unit_builders import parse_exposition

from exporter.memory import (
    FileFacts,
    FileStatus,
    key_values,
    parse_heartbeat,
    read_memory,
)
from exporter.memory_collector import MemoryCollector
from exporter.policy import budget_gate_open, budget_problems

CHARTERS = ("govern", "community", "engineering", "sustainability")

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
GATEWAY_BUDGET = """\
---
type: budget_header
owner: GOVERN
updated_at: 2026-03-04T05:06:07Z
source_of_truth: memory/_budget_header.md
---

# Budget Header (Live Gate)

allow_runs: true

max_tokens_per_charter_run: 1200
max_tool_calls_per_charter_run: 12
max_brain_spawns_per_hour: 2

budget_status: warn # ok | warn | critical
burn_rate_trend: down # down | flat | up

notes: "" # optional, <= 1 line
"""

GATEWAY_HEARTBEAT = """\
run_at: 2026-03-04T05:30Z
charter: {charter}
focus: triage the review queue
decision: no-op
no_op_reason: wip_full # required if no-op
expected_outcome:
metric: open_reviews
target: under 3
by_date: 2026-03-11
cost_guard:
max_tokens: 900
max_tool_calls: 7
escalation_requested: false
evidence:

- work/items/task.0042.md
"""


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


def scrape(directory: Path) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    registry = CollectorRegistry()
    registry.register(MemoryCollector(directory, CHARTERS))
    return parse_exposition(generate_latest(registry).decode())


def status_of(
    values: dict[str, dict[frozenset[tuple[str, str]], float]], name: str, **labels: str
) -> str:
    (current,) = [
        dict(k)["status"]
        for k, v in values[name].items()
        if v == 1 and all(dict(k).get(n) == x for n, x in labels.items())
    ]
    return current


def test_well_formed_files(memory: Path) -> None:
    values = scrape(memory)
    govern = frozenset({("charter", "govern")})
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "ok"
    assert (
        values["governance_heartbeat_run_timestamp_seconds"][govern]
        == datetime(2026, 2, 15, 12, tzinfo=UTC).timestamp()
    )
    assert values["governance_heartbeat_file_modified_timestamp_seconds"][govern] == pytest.approx(
        (memory / "GOVERN" / "heartbeat.md").stat().st_mtime
    )
    decision = {dict(k)["decision"]: v for k, v in values["governance_heartbeat_decision"].items()}
    assert decision == {"action": 0, "no-op": 1}
    reasons = {dict(k)["reason"]: v for k, v in values["governance_heartbeat_no_op_reason"].items()}
    assert reasons == {"veto": 0, "wip_full": 1, "blocked": 0, "no_delta": 0}

    assert status_of(values, "governance_budget_header_file_status") == "ok"
    assert values["governance_budget_allow_runs"][frozenset()] == 1
    assert status_of(values, "governance_budget_status") == "warn"
    trends = {dict(k)["trend"]: v for k, v in values["governance_budget_burn_rate_trend"].items()}
    assert trends == {"down": 0, "flat": 0, "up": 1}
    assert values["governance_budget_max_tokens_per_charter_run"][frozenset()] == 20000
    assert values["governance_budget_max_tool_calls_per_charter_run"][frozenset()] == 30
    assert values["governance_budget_max_brain_spawns_per_hour"][frozenset()] == 4
    assert (
        values["governance_budget_updated_timestamp_seconds"][frozenset()]
        == datetime(2026, 2, 15, 11, 30, tzinfo=UTC).timestamp()
    )
    # the other charters have no folder
    assert status_of(values, "governance_heartbeat_file_status", charter="community") == "missing"
    assert values["governance_memory_directory_readable"][frozenset()] == 1


@pytest.mark.parametrize(
    ("content", "status"),
    [
        ("", "incomplete"),  # empty
        ("run_at: 2026-02-15T12:00Z\nchar", "incomplete"),  # half-written: cut mid-file
        ("run_at: yesterday\ndecision: action\n", "malformed"),
        ("run_at: 2026-02-15T12:00\ndecision: action\n", "malformed"),  # no time zone
        ("run_at: 2026-02-15T12:00Z\ndecision: maybe\n", "malformed"),
        ("run_at: 2026-02-15T12:00Z\ndecision: no-op\nno_op_reason: bored\n", "malformed"),
        (b"run_at: 2026-02-15T12:00Z\ndecision: \xff\xfeaction\n", "malformed"),  # not UTF-8
        ("- **run_at**: 2026-02-15T12:00:30+01:00\n- **decision**: ACTION\n", "ok"),
        ("run_at: 0001-01-01T00:00+01:00\ndecision: action\n", "malformed"),  # before year 1
        ("run_at: 9999-12-31T23:59-01:00\ndecision: action\n", "malformed"),  # after 9999
    ],
)
def test_bad_heartbeats_are_a_status_not_a_crash(
    tmp_path: Path, content: str | bytes, status: str
) -> None:
    write(tmp_path / "GOVERN" / "heartbeat.md", content)
    values = scrape(tmp_path)
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == status
    if status != "ok":
        assert frozenset({("charter", "govern")}) not in values.get(
            "governance_heartbeat_run_timestamp_seconds", {}
        )


@pytest.mark.parametrize(
    ("content", "status"),
    [
        ("", "incomplete"),
        ("---\nupdated_at: 2026-02-15T11:30Z\n---\n", "incomplete"),  # allow_runs missing
        ("updated_at: 2026-02-15T11:30Z\nallow_runs: perhaps\n", "malformed"),
        (
            "updated_at: 2026-02-15T11:30Z\nallow_runs: true\nmax_tokens_per_charter_run: lots\n",
            "malformed",
        ),
        ("updated_at: 2026-02-15T11:30Z\nallow_runs: false\nbudget_status: dire\n", "malformed"),
        # digits int() refuses, and a number no float sample holds exactly
        (
            "updated_at: 2026-02-15T11:30Z\nallow_runs: true\nmax_brain_spawns_per_hour: ²\n",
            "malformed",
        ),
        (
            "updated_at: 2026-02-15T11:30Z\nallow_runs: true\nmax_tokens_per_charter_run: "
            + "9" * 400
            + "\n",
            "malformed",
        ),
    ],
)
def test_bad_budget_headers(tmp_path: Path, content: str, status: str) -> None:
    write(tmp_path / "_budget_header.md", content)
    values = scrape(tmp_path)
    assert status_of(values, "governance_budget_header_file_status") == status
    assert (
        "governance_budget_allow_runs" not in values or not values["governance_budget_allow_runs"]
    )


def test_a_closed_gate(tmp_path: Path) -> None:
    write(tmp_path / "_budget_header.md", BUDGET.replace("allow_runs: true", "allow_runs: false"))
    assert scrape(tmp_path)["governance_budget_allow_runs"][frozenset()] == 0


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.md", HEARTBEAT)
    memory = tmp_path / "memory"
    (memory / "GOVERN").mkdir(parents=True)
    (memory / "GOVERN" / "heartbeat.md").symlink_to(outside)
    (memory / "COMMUNITY").symlink_to(outside.parent, target_is_directory=True)
    (memory / "_budget_header.md").symlink_to(outside)
    values = scrape(memory)
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "unreadable"
    assert status_of(values, "governance_heartbeat_file_status", charter="community") == "missing"
    assert status_of(values, "governance_budget_header_file_status") == "unreadable"
    assert (
        "governance_heartbeat_run_timestamp_seconds" not in values
        or not values["governance_heartbeat_run_timestamp_seconds"]
    )


def test_unknown_charter_directories_are_counted_not_exported(memory: Path) -> None:
    write(memory / "MARKETING" / "heartbeat.md", HEARTBEAT)
    write(memory / "notes.txt", "hello")
    values = scrape(memory)
    assert values["governance_memory_ignored_entries"][frozenset()] == 2
    charters = {dict(k)["charter"] for k in values["governance_heartbeat_file_status"]}
    assert charters == set(CHARTERS)


def test_a_directory_or_fifo_where_a_file_should_be(tmp_path: Path) -> None:
    (tmp_path / "GOVERN" / "heartbeat.md").mkdir(parents=True)
    os.mkfifo(tmp_path / "_budget_header.md")
    values = scrape(tmp_path)
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "unreadable"
    assert status_of(values, "governance_budget_header_file_status") == "unreadable"


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    write(tmp_path / "GOVERN" / "heartbeat.md", HEARTBEAT + "x" * 200_000)
    values = scrape(tmp_path)
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "unreadable"


def test_a_missing_directory(tmp_path: Path) -> None:
    values = scrape(tmp_path / "nope")
    assert values["governance_memory_directory_readable"][frozenset()] == 0
    assert status_of(values, "governance_budget_header_file_status") == "missing"
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "missing"


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    values = scrape(write(tmp_path / "memory", "not a directory"))
    assert values["governance_memory_directory_readable"][frozenset()] == 0
    # there, but not listable: the heartbeats cannot be read, not "missing"
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "unreadable"


def test_a_file_rewritten_while_read(tmp_path: Path) -> None:
    """A writer truncating and rewriting the file under a reader: every read gives a
    status, never an exception, and a complete file always parses."""
    path = write(tmp_path / "GOVERN" / "heartbeat.md", HEARTBEAT)
    seen: set[FileStatus] = set()
    for cut in range(0, len(HEARTBEAT), 7):
        with path.open("w") as handle:  # truncate, then write part of it
            handle.write(HEARTBEAT[:cut])
            handle.flush()
            snapshot = read_memory(tmp_path, ["govern"])
            seen.add(snapshot.heartbeats[0].file.status)
            handle.write(HEARTBEAT[cut:])
        assert read_memory(tmp_path, ["govern"]).heartbeats[0].file.status is FileStatus.OK
    assert seen <= {FileStatus.OK, FileStatus.INCOMPLETE, FileStatus.MALFORMED}
    assert FileStatus.INCOMPLETE in seen


def test_key_values_first_wins_and_tolerates_markdown() -> None:
    assert key_values("* **Decision**: action\ndecision: no-op\n  run_at :  x ") == {
        "decision": "action",
        "run_at": "x",
    }


def test_heartbeat_parser_keeps_the_charter_it_was_asked_for() -> None:
    beat = parse_heartbeat("govern", HEARTBEAT.replace("GOVERN", "OTHER"), FileFacts(FileStatus.OK))
    assert beat.charter == "govern"


def test_files_as_the_gateway_writes_them(tmp_path: Path) -> None:
    """Inline comments, unindented sub-keys, a heading and front matter: all ok."""
    for charter in CHARTERS:
        write(
            tmp_path / charter.upper() / "heartbeat.md",
            GATEWAY_HEARTBEAT.format(charter=charter.upper()),
        )
    write(tmp_path / "_budget_header.md", GATEWAY_BUDGET)
    values = scrape(tmp_path)
    for charter in CHARTERS:
        labels = frozenset({("charter", charter)})
        assert status_of(values, "governance_heartbeat_file_status", charter=charter) == "ok"
        assert (
            values["governance_heartbeat_run_timestamp_seconds"][labels]
            == datetime(2026, 3, 4, 5, 30, tzinfo=UTC).timestamp()
        )
        reasons = {
            dict(k)["reason"]: v
            for k, v in values["governance_heartbeat_no_op_reason"].items()
            if dict(k)["charter"] == charter
        }
        assert reasons == {"veto": 0, "wip_full": 1, "blocked": 0, "no_delta": 0}
    assert status_of(values, "governance_budget_header_file_status") == "ok"
    assert status_of(values, "governance_budget_status") == "warn"
    trends = {dict(k)["trend"]: v for k, v in values["governance_budget_burn_rate_trend"].items()}
    assert trends == {"down": 1, "flat": 0, "up": 0}
    assert values["governance_budget_allow_runs"][frozenset()] == 1
    assert values["governance_budget_max_tokens_per_charter_run"][frozenset()] == 1200
    assert values["governance_budget_max_tool_calls_per_charter_run"][frozenset()] == 12
    assert values["governance_budget_max_brain_spawns_per_hour"][frozenset()] == 2
    assert (
        values["governance_budget_updated_timestamp_seconds"][frozenset()]
        == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    )


def test_a_healthy_gate_as_the_gateway_writes_it_raises_no_problem(tmp_path: Path) -> None:
    """The false GovernanceBudgetGateStale of issue 13: a fresh gate is open and quiet."""
    write(tmp_path / "_budget_header.md", GATEWAY_BUDGET)
    header = read_memory(tmp_path, []).budget
    now = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
    assert header.file.status is FileStatus.OK
    assert budget_gate_open(header, now)
    assert budget_problems(header, now) == []


@pytest.mark.parametrize(
    ("line", "status", "budget_status"),
    [
        ("budget_status: critical # ok | warn | critical", "ok", "critical"),
        ('budget_status: "ok" # quoted, then a comment', "ok", "ok"),
        ("budget_status: 'warn'   #no space needed after the hash", "ok", "warn"),
        ("budget_status:    # left empty on purpose", "ok", None),
        ("budget_status: `ok` # Markdown code", "ok", "ok"),
        # genuinely wrong values stay malformed, comment or not
        ("budget_status: dire # ok | warn | critical", "malformed", None),
        ("budget_status: ok#warn", "malformed", None),  # no whitespace: not a comment
        ('budget_status: "ok # inside the quotes"', "malformed", None),
        ('budget_status: "ok" trailing words', "malformed", None),
    ],
)
def test_inline_comments_in_the_budget_header(
    tmp_path: Path, line: str, status: str, budget_status: str | None
) -> None:
    write(tmp_path / "_budget_header.md", GATEWAY_BUDGET.replace("budget_status: warn", line))
    values = scrape(tmp_path)
    assert status_of(values, "governance_budget_header_file_status") == status
    shown = [
        dict(k)["status"] for k, v in values.get("governance_budget_status", {}).items() if v == 1
    ]
    assert shown == ([budget_status] if budget_status else [])


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("max_tokens_per_charter_run: 1_200 # per run", "ok"),
        ("max_tokens_per_charter_run: 1200 tokens # per run", "malformed"),
        ("allow_runs: false # GOVERN vetoed", "ok"),
        ('allow_runs: "true # not a comment"', "malformed"),
        ("updated_at: 2026-03-04T05:06:07Z # the last rewrite", "ok"),
    ],
)
def test_inline_comments_after_counts_booleans_and_timestamps(
    tmp_path: Path, line: str, status: str
) -> None:
    key = line.split(":", 1)[0]
    original = next(x for x in GATEWAY_BUDGET.splitlines() if x.startswith(key + ":"))
    write(tmp_path / "_budget_header.md", GATEWAY_BUDGET.replace(original, line))
    assert status_of(scrape(tmp_path), "governance_budget_header_file_status") == status


def test_a_sub_key_named_like_a_top_level_key_does_not_clobber_it(tmp_path: Path) -> None:
    """Indented under its block, a sub-key is the block's, even before the real key."""
    write(
        tmp_path / "GOVERN" / "heartbeat.md",
        "cost_guard:\n"
        "  decision: action\n"
        "  run_at: 1999-01-01T00:00Z\n"
        "  no_op_reason: veto\n" + GATEWAY_HEARTBEAT.format(charter="GOVERN"),
    )
    values = scrape(tmp_path)
    govern = frozenset({("charter", "govern")})
    assert status_of(values, "governance_heartbeat_file_status", charter="govern") == "ok"
    assert (
        values["governance_heartbeat_run_timestamp_seconds"][govern]
        == datetime(2026, 3, 4, 5, 30, tzinfo=UTC).timestamp()
    )
    decision = {dict(k)["decision"]: v for k, v in values["governance_heartbeat_decision"].items()}
    assert decision == {"action": 0, "no-op": 1}
    reasons = {dict(k)["reason"]: v for k, v in values["governance_heartbeat_no_op_reason"].items()}
    assert reasons["wip_full"] == 1


def test_key_values_block_rules() -> None:
    text = GATEWAY_HEARTBEAT.format(charter="GOVERN")
    values = key_values(text)
    assert values["expected_outcome.metric"] == "open_reviews"
    assert values["expected_outcome.by_date"] == "2026-03-11"
    assert values["cost_guard.max_tokens"] == "900"
    assert values["cost_guard.escalation_requested"] == "false"
    assert values["no_op_reason"] == "wip_full"
    for sub_key in ("metric", "target", "by_date", "max_tokens", "escalation_requested"):
        assert sub_key not in values
    # the contract's sub-key names, unindented, belong to the open block even when
    # they are named like a top-level key; any other unindented key closes it
    assert key_values(
        "cost_guard:\ndecision: action\nrun_at: x\ndecision: no-op\n",
        {"cost_guard": frozenset({"decision"})},
    ) == {"cost_guard": "", "cost_guard.decision": "action", "run_at": "x", "decision": "no-op"}
    assert key_values("cost_guard:\ndecision: action\n") == {
        "cost_guard": "",
        "decision": "action",
    }
    # front matter's edge closes a block; a dotted key is the same sub-key
    assert key_values("cost_guard:\n---\nmax_tokens: 5\ncost_guard.max_tokens: 6\n") == {
        "cost_guard": "",
        "max_tokens": "5",
        "cost_guard.max_tokens": "6",
    }
    # a `#` inside quotes or without whitespace before it is part of the value
    assert key_values("focus: \"PR #12\" # c\nf: fix \"issue #4\" now # c\ng: a#b\nh: 'it''s'") == {
        "focus": "PR #12",
        "f": 'fix "issue #4" now',
        "g": "a#b",
        "h": "it's",
    }


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("heartbeat.md", GATEWAY_HEARTBEAT.format(charter="GOVERN")),
        ("_budget_header.md", GATEWAY_BUDGET),
    ],
)
def test_a_gateway_file_cut_anywhere_is_a_status(tmp_path: Path, name: str, text: str) -> None:
    """Every prefix of a file in the gateway's form parses to a status, never raises;
    one cut inside an inline comment (or the quoted notes) reads as the whole file."""
    path = tmp_path / "GOVERN" / name if name == "heartbeat.md" else tmp_path / name
    seen: set[FileStatus] = set()
    for cut in range(len(text) + 1):
        write(path, text[:cut])
        snapshot = read_memory(tmp_path, ["govern"])
        status = (snapshot.heartbeats[0] if name == "heartbeat.md" else snapshot.budget).file.status
        seen.add(status)
        last_line = text[:cut].rsplit("\n", 1)[-1]
        if " #" in last_line or last_line.startswith('notes: "'):
            assert status is FileStatus.OK, text[:cut]
    assert seen <= {FileStatus.OK, FileStatus.INCOMPLETE, FileStatus.MALFORMED}
    assert FileStatus.OK in seen
    assert FileStatus.INCOMPLETE in seen
