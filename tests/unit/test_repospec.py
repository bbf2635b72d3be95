"""The repo-spec parser on the file's real forms (SOURCE-SYSTEM.md, the source project's
template and operator node), and the re-read of a file that changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.repospec import (
    LEDGER_CRON,
    LEDGER_TIMEZONE,
    MAX_FILE_BYTES,
    STATUS_INVALID,
    STATUS_OK,
    STATUS_UNREADABLE,
    DeclaredSchedule,
    RepoSpecError,
    RepoSpecFile,
    declared_schedules,
    parse_repo_spec,
)

PATH = Path(".cogni/repo-spec.yaml")

# As the source project writes one: comments, the ledger section, and the identity
# keys the app needs before it adds the ledger schedule itself.
HEAD = """\
# Cogni Git Review Repository Specification Template
schema_version: "0.1.4"
node_id: "538b4da2-bd59-4c3a-928a-8a40b6627205"
scope_id: "a1b2c3d4-0000-4000-8000-000000000001"
scope_key: "default"

# Activity ledger ingestion configuration
activity_ledger:
  epoch_length_days: 7
  activity_sources:
    github:
      attribution_pipeline: cogni-v0.0
      source_refs: ["Cogni-DAO/node-template"]

intent:
  name: cogni-template
"""

OPERATOR = (
    HEAD
    + """
# Governance schedule definitions (charter-scoped per governance-council.md)
governance:
  schedules:
    - charter: HEARTBEAT
      cron: "0 * * * *" # once per hour
      timezone: UTC
      entrypoint: HEARTBEAT
    - charter: LEDGER_INGEST
      cron: "0 6 * * *" # daily at 6am UTC
      timezone: UTC
      entrypoint: LEDGER_INGEST
"""
)

FEBRUARY = """\
governance:
  schedules:
    - charter: GOVERN
      cron: "0 * * * *"
      timezone: UTC
      entrypoint: GOVERN
    - charter: COMMUNITY
      cron: "0 * * * *"
      timezone: UTC
      entrypoint: COMMUNITY
    - charter: ENGINEERING
      cron: "0 * * * *"
      timezone: UTC
      entrypoint: ENGINEERING
    - charter: SUSTAINABILITY
      cron: "0 * * * *"
      timezone: UTC
      entrypoint: SUSTAINABILITY
"""

IMPLIED = DeclaredSchedule("ledger_ingest", LEDGER_CRON, LEDGER_TIMEZONE, implied=True)


def test_the_template_node_declares_only_the_implied_ledger() -> None:
    assert parse_repo_spec(HEAD, PATH) == (IMPLIED,)
    assert (LEDGER_CRON, LEDGER_TIMEZONE) == ("0 0 * * *", "UTC")


def test_the_operator_node_declares_its_own_ledger_entry() -> None:
    assert parse_repo_spec(OPERATOR, PATH) == (
        DeclaredSchedule("heartbeat", "0 * * * *", "UTC"),
        DeclaredSchedule("ledger_ingest", "0 6 * * *", "UTC"),
    )


def test_the_february_node_declares_four_hourly_charters() -> None:
    schedules = parse_repo_spec(FEBRUARY, PATH)
    assert [s.charter for s in schedules] == [
        "govern",
        "community",
        "engineering",
        "sustainability",
    ]
    assert {(s.cron, s.timezone, s.implied) for s in schedules} == {("0 * * * *", "UTC", False)}


@pytest.mark.parametrize(
    ("document", "implied"),
    [
        ({"activity_ledger": {}, "scope_id": "s", "scope_key": "k"}, True),
        ({"activity_ledger": {"x": 1}, "scope_id": "s"}, False),  # no scope_key
        ({"activity_ledger": {"x": 1}, "scope_key": "k"}, False),  # no scope_id
        ({"activity_ledger": None, "scope_id": "s", "scope_key": "k"}, False),
        ({"activity_ledger": "yes", "scope_id": "s", "scope_key": "k"}, False),
        ({"scope_id": "s", "scope_key": "k"}, False),  # no ledger section
        ({"activity_ledger": {}, "scope_id": "", "scope_key": "k"}, False),
        (
            {
                "activity_ledger": {},
                "scope_id": "s",
                "scope_key": "k",
                "governance": {"schedules": [{"charter": "ledger_ingest", "cron": "5 5 * * *"}]},
            },
            False,  # declared by hand: that one wins
        ),
    ],
)
def test_when_the_app_adds_the_ledger_schedule(document: dict[str, object], implied: bool) -> None:
    schedules = declared_schedules(document, PATH)
    assert (IMPLIED in schedules) is implied


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"charter": "Govern", "cron": "0 * * * *"},
            DeclaredSchedule("govern", "0 * * * *", "UTC"),
        ),
        (
            {"charter": " ops ", "cron": " */5 * * * * ", "timezone": " Europe/Berlin "},
            DeclaredSchedule("ops", "*/5 * * * *", "Europe/Berlin"),
        ),
        (
            {"charter": "x", "cron": "0 0 * * *", "timezone": "UTC", "entrypoint": "X", "more": 1},
            DeclaredSchedule("x", "0 0 * * *", "UTC"),
        ),
    ],
)
def test_an_entry(entry: dict[str, object], expected: DeclaredSchedule) -> None:
    assert declared_schedules({"governance": {"schedules": [entry]}}, PATH) == (expected,)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("governance: [unclosed", "not valid YAML at line 1"),
        ("- a\n- list\n", "the file is not a YAML mapping"),
        ("just text", "the file is not a YAML mapping"),
        ("", "the file is not a YAML mapping"),  # an empty file is no declaration
        ("# only a comment\n", "the file is not a YAML mapping"),
        ("governance: [1, 2]\n", "governance is not a mapping"),
        ("governance:\n  schedules: {charter: x}\n", "governance.schedules is not a list"),
        ("governance:\n  schedules: [x]\n", "governance.schedules[0] is not a mapping"),
        (
            "governance:\n  schedules: [{cron: '0 * * * *'}]\n",
            "governance.schedules[0] has no charter",
        ),
        ("governance:\n  schedules: [{charter: ' ', cron: x}]\n", "has no charter"),
        ("governance:\n  schedules: [{charter: 5, cron: x}]\n", "has no charter"),
        ("governance:\n  schedules: [{charter: a}]\n", "governance.schedules[0] (a) has no cron"),
        ("governance:\n  schedules: [{charter: a, cron: 5}]\n", "(a) has no cron"),
        (
            "governance:\n  schedules: [{charter: a, cron: x, timezone: 3}]\n",
            "(a) has a timezone that is not a name",
        ),
        (
            "governance:\n  schedules: [{charter: a, cron: x, timezone: ''}]\n",
            "has a timezone that is not a name",
        ),
        (
            "governance:\n  schedules:\n    - {charter: A, cron: x}\n    - {charter: a, cron: y}\n",
            "names a charter twice",
        ),
        (
            "governance:\n  schedules:\n    - {charter: a, cron: x}\n    - 7\n",
            "governance.schedules[1] is not a mapping",
        ),
    ],
)
def test_invalid_files_say_why(text: str, problem: str) -> None:
    with pytest.raises(RepoSpecError) as caught:
        parse_repo_spec(text, PATH)
    assert caught.value.status == STATUS_INVALID
    assert problem in caught.value.problem
    assert str(caught.value) == f"{PATH}: {caught.value.problem}"


@pytest.mark.parametrize(
    "text",
    ["governance:\n", "governance:\n  schedules:\n", "governance: {}\n", "intent: {}\n"],
)
def test_empty_declarations(text: str) -> None:
    assert parse_repo_spec(text, PATH) == ()


@given(st.text(max_size=200))
def test_any_text_is_a_declaration_or_a_labelled_error(text: str) -> None:
    outcome: tuple[DeclaredSchedule, ...] | RepoSpecError
    try:
        outcome = parse_repo_spec(text, PATH)
    except RepoSpecError as exc:
        outcome = exc
    if isinstance(outcome, RepoSpecError):
        assert outcome.status == STATUS_INVALID
        assert "\n" not in outcome.problem
    else:
        assert all(s.charter == s.charter.lower() for s in outcome)


# --- the file, read again when it changes ------------------------------------------------


def test_a_file_that_cannot_be_used_at_start_raises(tmp_path: Path) -> None:
    with pytest.raises(RepoSpecError) as caught:
        RepoSpecFile(tmp_path / "absent.yaml")
    assert caught.value.status == STATUS_UNREADABLE
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(RepoSpecError, match="larger than 1 MiB"):
        RepoSpecFile(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"governance: caf\xe9\n")
    with pytest.raises(RepoSpecError, match="not UTF-8") as caught:
        RepoSpecFile(latin)
    assert caught.value.status == STATUS_INVALID


def test_a_file_that_turns_bad_keeps_the_last_declaration(tmp_path: Path) -> None:
    path = tmp_path / "repo-spec.yaml"
    path.write_text(OPERATOR, encoding="utf-8")
    spec = RepoSpecFile(path)
    good = spec.state()
    assert (good.status, good.problem) == (STATUS_OK, None)
    assert set(good.by_charter()) == {"heartbeat", "ledger_ingest"}
    assert spec.state() is good  # unchanged: not parsed again

    path.write_text("governance: [unclosed\n", encoding="utf-8")
    bad = spec.state()
    assert bad.status == STATUS_INVALID
    assert (bad.problem or "").startswith("not valid YAML at line ")
    assert bad.schedules == good.schedules

    path.unlink()
    gone = spec.state()
    assert gone.status == STATUS_UNREADABLE
    assert gone.schedules == good.schedules

    path.write_text(HEAD, encoding="utf-8")
    healed = spec.state()
    assert (healed.status, healed.problem, healed.schedules) == (STATUS_OK, None, (IMPLIED,))
