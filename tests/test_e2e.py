"""End to end: an empty credit balance ends in a page that Alertmanager delivers.

Real PostgreSQL (the session's, tests/conftest.py), the real exporter process
reading it through the least-privilege role, and Debian's ``prometheus`` and
``prometheus-alertmanager`` running the repository's own prometheus.yml,
rules and alertmanager.yml. The only changes to those files are the documented
ones (``exporter.demo.stack``, used through ``tests/stack.py``): addresses, and every
duration divided by 20, so that the rules' ``for: 10m`` waits 30 s and a scrape
comes every 3 seconds (with a 3 s timeout: the scaled 1 s would be too short for a
busy machine). Alertmanager's pager and ticket receivers post to a webhook in this
process.

The rendering itself is checked here too: the rendered files pass promtool and
amtool, and differ from the committed ones in durations and addresses only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Database, run_exporter
from stack import (
    FAST,
    REPO,
    NotificationSink,
    Received,
    Stack,
    StackTiming,
    governance_stack,
    render_alertmanager_config,
    render_prometheus_config,
    render_rules,
    start_credit_outage,
    wait_for,
)

from exporter.demo import scenario
from exporter.demo.stack import parse_duration
from exporter.snapshot import SCHEMA_2026_03

ACCOUNT = scenario.SYSTEM_SLUG
HEALTHY_BALANCE = 500_000_000  # with 96M spent a day: 125 h of runway, green
# Generous bounds for noisy CI machines; the expected waits are a few seconds.
STARTUP_TIMEOUT = 60
PAGE_TIMEOUT = 90


def _exporter_target(url: str) -> str:
    return url.removeprefix("http://")


def _wait_until_green(stack: Stack) -> None:
    """Prometheus has scraped the exporter and evaluated the rules on it: level 0."""
    wait_for(
        lambda: (
            stack.prometheus.values(f'governance:credit_health:level{{account="{ACCOUNT}"}}')
            == [0.0]
        ),
        timeout=STARTUP_TIMEOUT,
        what="the recorded credit health to be green",
    )


def _evaluation_interval(stack: Stack) -> float:
    """The longest scaled rule evaluation interval (global, or a group's own)."""
    committed = yaml.safe_load(REPO.prometheus_config.read_text())["global"]
    groups = yaml.safe_load(REPO.rules.read_text())["groups"]
    intervals = [committed["evaluation_interval"]]
    intervals += [group["interval"] for group in groups if "interval" in group]
    return max(stack.timing.seconds(interval) for interval in intervals)


def _wait_until_scraped_and_evaluated(stack: Stack) -> None:
    """``up`` is 1, then one more rule evaluation: no alert still reflects the time
    before the first scrape (``absent(up)`` makes GovernanceExporterDown pending)."""
    wait_for(
        lambda: stack.prometheus.values('up{job="governance"}') == [1.0],
        timeout=STARTUP_TIMEOUT,
        what='up{job="governance"} == 1',
    )
    time.sleep(_evaluation_interval(stack))


# Pending for a moment after one slow scrape on a busy machine (``up`` 0), which is
# what their ``for:`` absorbs; every other critical alert is a fault even pending.
_SCRAPE_HEALTH_ALERTS = frozenset({"GovernanceExporterDown", "GovernanceExporterFailing"})


def _unexpected_critical_alerts(stack: Stack) -> list[dict[str, Any]]:
    return [
        a
        for a in stack.prometheus.alerts()
        if a["labels"].get("severity") == "critical"
        and (a["state"] == "firing" or a["labels"].get("alertname") not in _SCRAPE_HEALTH_ALERTS)
    ]


def _assert_quiet(stack: Stack, sink: NotificationSink, seconds: float) -> None:
    """No page, and no critical alert for ``seconds``: none firing, and none pending
    but the scrape-health ones."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _unexpected_critical_alerts(stack) == []
        assert sink.received("pager") == [], "a healthy system paged"
        time.sleep(0.25)


def _pages(sink: NotificationSink, status: str = "firing") -> list[Received]:
    return [r for r in sink.received("pager") if r.status == status]


def _runway_page(received: Received) -> bool:
    return received.has_alert(
        "firing", alertname="GovernanceCreditRunwayLow", severity="critical", account=ACCOUNT
    )


@pytest.fixture
def healthy(make_database: Callable[[str], Database]) -> tuple[Database, dict[str, str]]:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        _, schedules = scenario.seed_governance(
            conn, SCHEMA_2026_03, datetime.now(UTC), balance_credits=HEALTHY_BALANCE, hours=24
        )
    return database, schedules


def test_an_empty_account_pages_and_a_top_up_resolves_it(
    healthy: tuple[Database, dict[str, str]], tmp_path: Path
) -> None:
    database, schedules = healthy
    with (
        run_exporter(database.monitor_url) as exporter,
        NotificationSink() as sink,
        governance_stack(
            tmp_path, exporter_target=_exporter_target(exporter.url), sink=sink
        ) as stack,
    ):
        # 1. Healthy: green, no page and no critical alert for two evaluations.
        _wait_until_green(stack)
        _wait_until_scraped_and_evaluated(stack)
        _assert_quiet(stack, sink, seconds=2 * _evaluation_interval(stack))

        # 2. The balance is gone and runs are rejected: a critical page with the account.
        start_credit_outage(database, schedules)
        page = sink.wait_for(
            "pager", _runway_page, timeout=PAGE_TIMEOUT, what="a GovernanceCreditRunwayLow page"
        )
        # Grouped per node: the target's labels are part of the group.
        assert page.group_labels == {
            "alertname": "GovernanceCreditRunwayLow",
            "job": "governance",
            "instance": _exporter_target(exporter.url),
            "account": ACCOUNT,
        }
        assert page.has_alert("firing", condition="balance", account=ACCOUNT)
        alert = next(a for a in page.alerts if a["labels"].get("condition") == "balance")
        assert "insufficient_credits" in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"].endswith("#governancecreditrunwaylow")
        # The rejected runs themselves open a ticket, not a page.
        ticket = sink.wait_for(
            "ticket",
            lambda r: r.has_alert(
                "firing", alertname="GovernanceRunsFailing", reason="insufficient_credits"
            ),
            timeout=PAGE_TIMEOUT,
            what="a GovernanceRunsFailing ticket",
        )
        assert ticket.has_alert(severity="warning", account=ACCOUNT)

        # 3. Topped up: the page resolves.
        with database.connect() as conn:
            scenario.set_balance(conn, scenario.system_tenant(conn), HEALTHY_BALANCE)
        resolved = sink.wait_for(
            "pager",
            lambda r: (
                r.status == "resolved"
                and r.group_labels.get("alertname") == "GovernanceCreditRunwayLow"
            ),
            timeout=PAGE_TIMEOUT,
            what="the resolved GovernanceCreditRunwayLow notification",
        )
        assert resolved.has_alert("resolved", condition="balance", account=ACCOUNT)
        assert resolved.at > page.at


def test_a_killed_exporter_pages(healthy: tuple[Database, dict[str, str]], tmp_path: Path) -> None:
    database, _ = healthy
    with (
        run_exporter(database.monitor_url) as exporter,
        NotificationSink() as sink,
        governance_stack(
            tmp_path, exporter_target=_exporter_target(exporter.url), sink=sink
        ) as stack,
    ):
        _wait_until_green(stack)
        assert _pages(sink) == []
        exporter.process.kill()
        exporter.process.wait(10)
        page = sink.wait_for(
            "pager",
            lambda r: r.has_alert("firing", alertname="GovernanceExporterDown"),
            timeout=PAGE_TIMEOUT,
            what="a GovernanceExporterDown page",
        )
        assert page.has_alert(severity="critical", job="governance")
        pids = stack.pids
        assert len(pids) == 2
    for pid in pids:  # Prometheus and Alertmanager are gone with the stack
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- the rendering: the one documented way the committed files are changed -------------


def _without(document: Any, keys: set[str]) -> Any:
    """A copy with every value under ``keys`` (at any depth) blanked."""
    if isinstance(document, dict):
        return {k: None if k in keys else _without(v, keys) for k, v in document.items()}
    if isinstance(document, list):
        return [_without(item, keys) for item in document]
    return document


def _durations(document: Any, keys: set[str]) -> list[str]:
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in keys and isinstance(value, str):
                found.append(value)
            else:
                found += _durations(value, keys)
    elif isinstance(document, list):
        for item in document:
            found += _durations(item, keys)
    return found


def test_scaled_durations() -> None:
    timing = StackTiming(factor=1 / 60)
    assert FAST.scale("10m") == "30s"
    assert timing.scale("30m") == "30s"
    assert timing.scale("1h30m") == "1m30s"
    assert timing.scale("0m") == "0s"
    assert timing.scale("20s") == "1s"  # never below the minimum
    assert StackTiming(factor=1 / 60, minimum_seconds=0.1).scale("30s") == "500ms"
    assert StackTiming().scale("4h") == "4h"
    assert StackTiming().scale("5m") == "5m"
    assert StackTiming(factor=1 / 20).scale("30s") == "1s500ms"
    # A scrape timeout: at least 5 s (or as committed, if shorter), at most the interval.
    assert FAST.scale_scrape_timeout("20s", "3s") == "3s"
    assert StackTiming(factor=1 / 10).scale_scrape_timeout("20s", "6s") == "5s"
    assert StackTiming(factor=1 / 2).scale_scrape_timeout("20s", "30s") == "10s"
    assert StackTiming(factor=1 / 20).scale_scrape_timeout("2s", None) == "2s"
    assert StackTiming().scale_scrape_timeout("20s", "1m") == "20s"
    with pytest.raises(ValueError, match="duration"):
        parse_duration("10 minutes")


def test_rendered_rules_differ_only_in_durations(tmp_path: Path) -> None:
    committed = yaml.safe_load(REPO.rules.read_text())
    rendered = yaml.safe_load(render_rules(REPO.rules.read_text(), FAST))
    keys = {"for", "interval", "keep_firing_for"}
    assert _without(rendered, keys) == _without(committed, keys)
    before, after = _durations(committed, keys), _durations(rendered, keys)
    assert len(before) == len(after) > 5
    for original, scaled in zip(before, after, strict=True):
        assert scaled == FAST.scale(original)
    path = tmp_path / "governance.rules.yml"
    path.write_text(render_rules(REPO.rules.read_text(), FAST))
    _check_ok(["promtool", "check", "rules", str(path)])


def test_rendered_prometheus_config_changes_addresses_and_durations(tmp_path: Path) -> None:
    rules = tmp_path / "governance.rules.yml"
    rules.write_text(render_rules(REPO.rules.read_text(), FAST))
    text = render_prometheus_config(
        REPO.prometheus_config.read_text(),
        targets={"governance": ["127.0.0.1:10215"]},
        rule_files=[rules],
        alertmanagers=["127.0.0.1:9093"],
        timing=FAST,
    )
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(text)
    _check_ok(["promtool", "check", "config", str(config_path)])
    committed, rendered = yaml.safe_load(REPO.prometheus_config.read_text()), yaml.safe_load(text)
    keys = {"scrape_interval", "evaluation_interval", "scrape_timeout", "targets", "rule_files"}
    assert _without(rendered, keys) == _without(committed, keys)
    assert rendered["global"]["scrape_interval"] == FAST.scale(
        committed["global"]["scrape_interval"]
    )
    # The scaled timeout (20s / 20 = 1s) is raised to the minimum, capped by the interval.
    assert parse_duration(rendered["global"]["scrape_timeout"]) == min(
        FAST.minimum_scrape_timeout_seconds,
        parse_duration(rendered["global"]["scrape_interval"]),
        parse_duration(committed["global"]["scrape_timeout"]),
    )


def test_rendered_alertmanager_config_keeps_the_routing(tmp_path: Path) -> None:
    env = {"PAGER_WEBHOOK_URL": "http://127.0.0.1:1/pager", "TICKET_WEBHOOK_URL": "http://x/t"}
    text = render_alertmanager_config(REPO.alertmanager_config.read_text(), env=env, timing=FAST)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    _check_ok(["amtool", "check-config", str(path)])
    rendered = yaml.safe_load(text)
    committed = yaml.safe_load(REPO.alertmanager_config.read_text())
    keys = {"group_wait", "group_interval", "repeat_interval", "url"}
    assert _without(rendered, keys) == _without(committed, keys)
    urls = [c["url"] for r in rendered["receivers"] for c in r.get("webhook_configs", [])]
    assert sorted(urls) == sorted(env.values())
    with pytest.raises(ValueError, match="PAGER_WEBHOOK_URL"):
        render_alertmanager_config(REPO.alertmanager_config.read_text(), env={}, timing=FAST)
    assert rendered["route"]["group_wait"] == FAST.scale(committed["route"]["group_wait"])


def _check_ok(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is not on PATH (Debian: prometheus / prometheus-alertmanager)")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
