"""The gateway files' parsers on text alone: key_values, timestamps, heartbeats, headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.memory import (
    FileFacts,
    FileStatus,
    key_values,
    parse_budget_header,
    parse_heartbeat,
    parse_timestamp,
)

OK = FileFacts(FileStatus.OK)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run_at: 2026-02-15T12:00Z", datetime(2026, 2, 15, 12, tzinfo=UTC)),
        ("2026-02-15T12:00z", datetime(2026, 2, 15, 12, tzinfo=UTC)),
        ("2026-02-15T12:00:30Z", datetime(2026, 2, 15, 12, 0, 30, tzinfo=UTC)),
        ("2026-02-15T13:00+01:00", datetime(2026, 2, 15, 12, tzinfo=UTC)),
        ("2026-02-15T07:00-05:00", datetime(2026, 2, 15, 12, tzinfo=UTC)),
        ("  2026-02-15T12:00:00.5Z ", datetime(2026, 2, 15, 12, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_the_gateway_writes(text: str, expected: datetime) -> None:
    value = text.split(": ", 1)[-1]
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["yesterday", "", "2026-02-15T12:00", "2026-02-15 noon", "0001-01-01T00:00+01:00"],
)
def test_timestamps_that_are_not(text: str) -> None:
    heartbeat = parse_heartbeat("govern", f"run_at: {text}\ndecision: action\n", OK)
    assert heartbeat.file.status in {FileStatus.MALFORMED, FileStatus.INCOMPLETE}
    assert heartbeat.run_at is None


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_any_iso_timestamp_reads_back_as_the_same_instant(moment: datetime) -> None:
    assert parse_timestamp(moment.isoformat()) == moment


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("decision: action", "decision", "action"),
        ("Decision: action", "decision", "action"),
        ("- decision: action", "decision", "action"),
        ("* **decision**: action", "decision", "action"),
        ("**decision**: action", "decision", "action"),
        ("decision : action  ", "decision", "action"),
        ("decision: `action`", "decision", "action"),
        ("decision: 'action'", "decision", "action"),
        ('decision: "action"', "decision", "action"),
        ("decision: action # why", "decision", "action"),
        ("decision: action#not a comment", "decision", "action#not a comment"),
        ('notes: "" # optional', "notes", ""),
        ("notes: 'a # b'", "notes", "a # b"),
        ('notes: "say \\"hi\\""', "notes", 'say "hi"'),
        ("notes: 'it''s'", "notes", "it's"),
        ('notes: "unclosed # c', "notes", "unclosed"),
        ("cost_guard.max_tokens: 5", "cost_guard.max_tokens", "5"),
    ],
)
def test_one_line(line: str, key: str, value: str) -> None:
    assert key_values(line)[key] == value


@pytest.mark.parametrize(
    "line",
    ["# decision: action", "decision action", "1decision: action", "", "   ", "---"],
)
def test_lines_that_hold_no_key(line: str) -> None:
    assert key_values(line) == {}


@pytest.mark.parametrize("parent", ["expected_outcome", "cost_guard"])
def test_unindented_sub_keys_of_the_contract_belong_to_their_block(parent: str) -> None:
    subs = {
        "expected_outcome": ("metric", "target", "by_date"),
        "cost_guard": ("max_tokens", "max_tool_calls", "escalation_requested"),
    }[parent]
    text = f"{parent}: # the block\n" + "".join(f"{s}: v{i}\n" for i, s in enumerate(subs))
    text += "decision: action\n"
    values = key_values(text)
    assert values[parent] == ""
    for i, sub in enumerate(subs):
        assert values[f"{parent}.{sub}"] == f"v{i}"
        assert sub not in values
    assert values["decision"] == "action"


def test_indented_keys_belong_to_the_open_block_whatever_their_name() -> None:
    values = key_values("evidence:\n  link: x\n  decision: no-op\ndecision: action\n")
    assert values["evidence.link"] == "x"
    assert values["evidence.decision"] == "no-op"
    assert values["decision"] == "action"


@given(st.text())
def test_key_values_never_raises_and_keys_are_lower_case(text: str) -> None:
    values = key_values(text)
    assert all(key == key.lower() for key in values)
    assert all("\n" not in value for value in values.values())


@pytest.mark.parametrize(
    ("text", "status", "decision", "reason"),
    [
        ("run_at: 2026-02-15T12:00Z\ndecision: action\n", FileStatus.OK, "action", None),
        ("run_at: 2026-02-15T12:00Z\ndecision: ACTION\n", FileStatus.OK, "action", None),
        (
            "run_at: 2026-02-15T12:00Z\ndecision: no-op\nno_op_reason: veto\n",
            FileStatus.OK,
            "no-op",
            "veto",
        ),
        # an action keeps no reason, even a bad one
        (
            "run_at: 2026-02-15T12:00Z\ndecision: action\nno_op_reason: bored\n",
            FileStatus.OK,
            "action",
            None,
        ),
        ("run_at: 2026-02-15T12:00Z\ndecision: no-op\n", FileStatus.OK, "no-op", None),
        ("run_at: 2026-02-15T12:00Z\n", FileStatus.INCOMPLETE, None, None),
        ("decision: action\n", FileStatus.INCOMPLETE, None, None),
        ("", FileStatus.INCOMPLETE, None, None),
        ("run_at: 2026-02-15T12:00Z\ndecision: maybe\n", FileStatus.MALFORMED, None, None),
        (
            "run_at: 2026-02-15T12:00Z\ndecision: no-op\nno_op_reason: bored\n",
            FileStatus.MALFORMED,
            None,
            None,
        ),
    ],
)
def test_heartbeats(
    text: str, status: FileStatus, decision: str | None, reason: str | None
) -> None:
    modified = datetime(2026, 2, 15, 12, 1, tzinfo=UTC)
    beat = parse_heartbeat("govern", text, FileFacts(FileStatus.OK, modified))
    assert beat.charter == "govern"
    assert beat.file.status is status
    assert beat.file.modified_at == modified  # kept whatever the status
    assert (beat.decision, beat.no_op_reason) == (decision, reason)
    assert (beat.file.problem is None) is (status is FileStatus.OK)


HEAD = "updated_at: 2026-03-04T05:06:07Z\nallow_runs: true\n"


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("allow_runs: yes", "allow_runs", True),
        ("allow_runs: 1", "allow_runs", True),
        ("allow_runs: FALSE", "allow_runs", False),
        ("allow_runs: no", "allow_runs", False),
        ("allow_runs: 0", "allow_runs", False),
        ("budget_status: CRITICAL", "budget_status", "critical"),
        ("budget_status:", "budget_status", None),
        ("burn_rate_trend: flat", "burn_rate_trend", "flat"),
        ("max_tokens_per_charter_run: 1,200", "max_tokens_per_charter_run", 1200),
        ("max_tokens_per_charter_run: 1_200", "max_tokens_per_charter_run", 1200),
        ("max_tool_calls_per_charter_run: 0", "max_tool_calls_per_charter_run", 0),
        ("max_brain_spawns_per_hour: " + "9" * 15, "max_brain_spawns_per_hour", 10**15 - 1),
    ],
)
def test_budget_header_values(line: str, field: str, value: object) -> None:
    key = line.split(":", 1)[0]
    text = "\n".join(x for x in HEAD.splitlines() if not x.startswith(key + ":"))
    header = parse_budget_header(f"{line}\n{text}\n", OK)
    assert header.file.status is FileStatus.OK
    assert getattr(header, field) == value


@pytest.mark.parametrize(
    "line",
    [
        "allow_runs: perhaps",
        "budget_status: dire",
        "burn_rate_trend: sideways",
        "max_tokens_per_charter_run: -1",
        "max_tokens_per_charter_run: 1.5",
        "max_brain_spawns_per_hour: " + "9" * 16,
        "updated_at: soon",
    ],
)
def test_budget_header_values_that_are_malformed(line: str) -> None:
    key = line.split(":", 1)[0]
    text = "\n".join(x for x in HEAD.splitlines() if not x.startswith(key + ":"))
    header = parse_budget_header(f"{line}\n{text}\n", OK)
    assert header.file.status is FileStatus.MALFORMED
    assert header.allow_runs is None
    assert header.file.problem


@given(st.text(max_size=400))
def test_any_text_is_a_status(text: str) -> None:
    beat = parse_heartbeat("govern", text, OK)
    header = parse_budget_header(text, OK)
    assert beat.file.status in set(FileStatus) - {FileStatus.MISSING, FileStatus.UNREADABLE}
    assert header.file.status in set(FileStatus) - {FileStatus.MISSING, FileStatus.UNREADABLE}
