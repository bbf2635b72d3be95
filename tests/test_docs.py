"""The reference in docs/ must keep up with the code, and the README stay a front door."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

from exporter import collector
from exporter.cache import SnapshotCache
from exporter.memory_collector import MemoryCollector
from exporter.model import FAILURE_REASONS, RUN_STATUSES, governance_view
from exporter.repospec import RepoSpecState
from exporter.settings import Settings, option_env, option_flag
from exporter.snapshot import (
    SCHEMA_2026_03,
    AccountRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
)

ROOT = Path(__file__).resolve().parent.parent


class FixedSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def read(self, now: datetime) -> Snapshot:
        return self._snapshot


DOCS = ROOT / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
METRICS = (DOCS / "metrics.md").read_text()
ALERTS = (DOCS / "alerts.md").read_text()


def test_every_option_is_in_the_configuration_table() -> None:
    for name in Settings.model_fields:
        row = f"| `{option_flag(name)}` | `{option_env(name)}` |"
        assert row in CONFIGURATION, f"docs/configuration.md's table lacks {name}"


def _exported_names() -> set[str]:
    snapshot = Snapshot(
        taken_at=datetime(2026, 2, 15, tzinfo=UTC),
        window_seconds=86400,
        account="cogni_system",
        schema=SchemaInfo(SCHEMA_2026_03, "graph_runs", True, has_requested_by=True),
        account_row=AccountRow("id", 1),
        spend=SpendRow(0, 0, None),  # type: ignore[arg-type]
        schedules=(),
        schedules_truncated=False,
        run_counts=(),
        last_outcomes=(),
        recent_runs=(),
    )
    view = governance_view(snapshot, ["govern"])
    result = SnapshotCache(FixedSource(snapshot)).get()
    families = [
        *collector.credit_families(view),
        *collector.charter_families(view),
        *collector.unscheduled_families(view),
        *collector.finished_families(view.account, result),
        *collector.repo_spec_families(RepoSpecState(())),
        *collector.health_families(None, "unknown"),
    ]
    names = set()
    for family in families:
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def _memory_names(directory: Path) -> set[str]:
    registry = CollectorRegistry()
    registry.register(MemoryCollector(directory, ["govern"]))
    return {family.name for family in registry.collect()}


def test_every_metric_is_in_the_metric_tables(tmp_path: Path) -> None:
    documented = set(re.findall(r"^\| `(governance_[a-z_]+)` \|", METRICS, re.MULTILINE))
    exported = _exported_names() | _memory_names(tmp_path)
    assert exported <= documented, "README lacks these metrics"
    assert documented - exported == set(), "README documents metrics that do not exist"


def test_statuses_and_reasons_are_documented() -> None:
    for value in (*RUN_STATUSES, *FAILURE_REASONS):
        assert f"`{value}`" in METRICS


def test_bundled_schemas_equal_the_shared_reference() -> None:
    """The package ships copies of the source system's schemas (the demo loads them);
    they must not drift from ../shared/reference, which CI checks out beside us."""
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not beside this checkout (CI has it)")
    bundled = Path(__file__).resolve().parent.parent / "exporter" / "reference"
    for version in ("2026-02", "2026-03"):
        name = f"schema-{version}.sql"
        assert (bundled / name).read_text() == (shared / name).read_text(), name


def test_the_alert_table_matches_the_rules() -> None:
    files = sorted((ROOT / "prometheus" / "rules").glob("*.rules.yml"))
    in_rules = sorted(
        (rule["alert"], rule["labels"]["severity"], rule.get("for", "0m"))
        for path in files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    )
    rows = re.findall(r"^\| `(Governance\w+)` \| (\w+) \| (\w+) \|", ALERTS, re.MULTILINE)
    assert sorted(rows) == in_rules


README_MAX_LINES = 200
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def test_the_readme_fits_a_front_door() -> None:
    """Why, the two commands, your own node, where to read more; the reference is in docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    readme = "\n".join(lines)
    commands = ("governance-exporter demo", ".venv/bin/pytest", "pip install -e '.[dev]'")
    for command in commands:
        assert command in readme, command
    assert readme.index(".venv/bin/pytest") < readme.index("## Against your own node")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = _slug(heading)
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _why_broken(document: Path, target: str) -> str | None:
    """None when a relative link leads to a file (and, into Markdown, to a heading)."""
    path, _, anchor = target.partition("#")
    resolved = (document.parent / path).resolve() if path else document
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text()):
        return "no such heading"
    return None


def test_every_relative_link_leads_to_a_file() -> None:
    """README.md and docs/*.md link only to files (and headings) that exist."""
    broken = []
    checked = 0
    for document in _documents():
        for target in LINK.findall(FENCE.sub("", document.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
                continue
            checked += 1
            why = _why_broken(document, target)
            if why is not None:
                broken.append(f"{document.relative_to(ROOT)}: {target} ({why})")
    assert checked > 20, "no links found: the pattern is wrong"
    assert broken == []


def test_the_slugs_are_githubs() -> None:
    assert _slug("Without Grafana: the status page and `check`") == (
        "without-grafana-the-status-page-and-check"
    )
    assert _slug("From the gateway's memory files") == "from-the-gateways-memory-files"
    assert _anchors("# A\n## A\n```\n# B\n```\n") == {"a", "a-1"}
