"""A Prometheus HA pair and a clustered Alertmanager: one incident, one page.

prometheus/ha/: two Prometheus servers (replica ``a`` and ``b``) scrape the same
real exporter on a real PostgreSQL with the repository's rules, and both send every
alert to both Alertmanagers, which gossip on loopback and run the repository's
routing (``prometheus/alertmanager.yml``). Every file is rendered as in
tests/test_e2e.py (addresses, durations / 20: ``tests/stack.py``).

Why one page: each replica drops its ``replica`` label before sending
(``alert_relabel_configs``), so the two send the same alert, which Alertmanager
merges; both Alertmanagers hold it, and the cluster's shared notification log lets
only one of them notify. With the relabeling removed the replicas send two alerts
(``replica="a"``, ``replica="b"``) and the incident is paged twice: the second test.

A page here is an alert first delivered to the ``pager`` receiver: the committed
``group_by`` has no ``replica``, so the two alerts of the second test may arrive in
one notification of the critical group or in two; either way each is a page.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Database, run_exporter
from stack import (
    FAST,
    HA_DIR,
    REPO,
    NotificationSink,
    Peer,
    PrometheusAPI,
    alertmanager_cluster,
    find_prometheus,
    render_alertmanager_config,
    render_ha_prometheus_config,
    render_rules,
    run_prometheus,
    scenario,
    seed_healthy_node,
    start_credit_outage,
    wait_for,
)

from exporter.snapshot import SCHEMA_2026_03

ALERT = "GovernanceCreditRunwayLow"
REPLICAS = ("a", "b")
PEER_TIMEOUT_SECONDS = 3
# Generous bounds for noisy CI machines; the expected waits are a few seconds.
STARTUP_TIMEOUT = 60
PAGE_TIMEOUT = 90


def _replica_config(replica: str) -> Path:
    return HA_DIR / f"prometheus-{replica}.yml"


@contextlib.contextmanager
def _ha_pair(
    workdir: Path, *, exporter_url: str, sink: NotificationSink, keep_alert_relabeling: bool
) -> Iterator[tuple[list[PrometheusAPI], list[Peer]]]:
    """Two clustered Alertmanagers, then both replicas sending to both."""
    binary = find_prometheus()
    assert binary is not None, "prometheus must be on PATH (Debian: prometheus)"
    routing = render_alertmanager_config(
        REPO.alertmanager_config.read_text(),
        env={
            "PAGER_WEBHOOK_URL": sink.url_for("pager"),
            "TICKET_WEBHOOK_URL": sink.url_for("ticket"),
        },
        timing=FAST,
    )
    rules = {REPO.rules.name: render_rules(REPO.rules.read_text(), FAST)}
    with (
        alertmanager_cluster(workdir, routing, peer_timeout=f"{PEER_TIMEOUT_SECONDS}s") as peers,
        contextlib.ExitStack() as servers,
    ):
        replicas = []
        for replica in REPLICAS:
            home = workdir / f"prometheus-{replica}"
            config = render_ha_prometheus_config(
                _replica_config(replica).read_text(),
                targets={"governance": [exporter_url.removeprefix("http://")]},
                rule_files=[home / REPO.rules.name],
                alertmanagers=[peer.url.removeprefix("http://") for peer in peers],
                timing=FAST,
                keep_alert_relabeling=keep_alert_relabeling,
            )
            server = servers.enter_context(run_prometheus(binary, home, config, rules, timing=FAST))
            replicas.append(PrometheusAPI(server.url))
        yield replicas, peers


def _is_balance_alert(alert: dict[str, Any]) -> bool:
    labels = alert.get("labels", {})
    return bool(
        labels.get("alertname") == ALERT
        and labels.get("severity") == "critical"
        and labels.get("condition") == "balance"
    )


def _identity(alert: dict[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset(alert["labels"].items())


def _pages(sink: NotificationSink) -> list[dict[str, str]]:
    """Each balance alert the pager received firing, once: the first time it came."""
    seen: dict[frozenset[tuple[str, str]], dict[str, str]] = {}
    for notification in sink.received("pager"):
        for alert in notification.alerts:
            if alert.get("status") == "firing" and _is_balance_alert(alert):
                seen.setdefault(_identity(alert), dict(alert["labels"]))
    return list(seen.values())


def _repeated_notifications(sink: NotificationSink) -> list[Any]:
    """Notifications sent more than once with the same group and the same firing
    alerts: what two unclustered Alertmanagers would send (repeat_interval, 3 min
    here, is longer than the test)."""
    contents = Counter(
        (
            notification.payload.get("groupKey"),
            notification.status,
            frozenset(_identity(a) for a in notification.alerts if a.get("status") == "firing"),
        )
        for notification in sink.received("pager")
    )
    return [content for content, count in contents.items() if count > 1]


def _firing_everywhere(replicas: list[PrometheusAPI], peers: list[Peer]) -> bool:
    """Both replicas fire the balance alert and both Alertmanagers hold it."""
    return all(
        any(a["state"] == "firing" and _is_balance_alert(a) for a in replica.alerts())
        for replica in replicas
    ) and all(
        any(a["status"]["state"] == "active" and _is_balance_alert(a) for a in peer.alerts())
        for peer in peers
    )


def _wait_until_green(replicas: list[PrometheusAPI]) -> None:
    for replica in replicas:
        wait_for(
            lambda replica=replica: (
                replica.values('governance:credit_health:level{job="governance"}') == [0.0]
            ),
            timeout=STARTUP_TIMEOUT,
            what=f"the recorded credit health to be green in {replica.url}",
        )


def test_one_incident_pages_once(make_database: Callable[[str], Database], tmp_path: Path) -> None:
    database = make_database(SCHEMA_2026_03)
    schedules = seed_healthy_node(database)
    with (
        run_exporter(database.monitor_url) as exporter,
        NotificationSink() as sink,
        _ha_pair(tmp_path, exporter_url=exporter.url, sink=sink, keep_alert_relabeling=True) as (
            replicas,
            peers,
        ),
    ):
        _wait_until_green(replicas)
        assert sink.received("pager") == [], "a healthy node paged"

        start_credit_outage(database, schedules)
        sink.wait_for(
            "pager",
            lambda r: any(_is_balance_alert(a) for a in r.alerts),
            timeout=PAGE_TIMEOUT,
            what=f"a {ALERT} balance page",
        )
        wait_for(
            lambda: _firing_everywhere(replicas, peers),
            timeout=PAGE_TIMEOUT,
            what="the balance alert firing in both replicas and held by both Alertmanagers",
        )
        # The second Alertmanager sends its own notification when the first one's
        # has not reached it within the peer timeout after its group is flushed:
        # give it that long, and then some, to show up.
        time.sleep(PEER_TIMEOUT_SECONDS + FAST.seconds("30s") + 3)

        pages = _pages(sink)
        assert len(pages) == 1, pages
        (page,) = pages
        assert "replica" not in page
        assert page["cluster"] == "governance-eu-1"
        assert page["account"] == scenario.SYSTEM_SLUG
        assert _repeated_notifications(sink) == []
        first = next(
            r for r in sink.received("pager") if r.has_alert("firing", condition="balance")
        )
        assert first.group_labels.get("alertname") == ALERT


def test_a_kept_replica_label_pages_twice(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    """The misconfiguration the relabeling prevents: the same incident, two pages."""
    database = make_database(SCHEMA_2026_03)
    start_credit_outage(database, seed_healthy_node(database))
    with (
        run_exporter(database.monitor_url) as exporter,
        NotificationSink() as sink,
        _ha_pair(tmp_path, exporter_url=exporter.url, sink=sink, keep_alert_relabeling=False) as (
            replicas,
            _peers,
        ),
    ):
        wait_for(
            lambda: len(_pages(sink)) >= 2,
            timeout=PAGE_TIMEOUT,
            what="a balance page from each replica",
        )
        pages = _pages(sink)
        assert sorted(page.get("replica", "") for page in pages) == ["a", "b"], pages
        assert all(page["account"] == scenario.SYSTEM_SLUG for page in pages)
        assert len(replicas) == 2


# --- the example files themselves ------------------------------------------------------


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_replicas_differ_only_in_their_replica_label() -> None:
    a, b = (_load(_replica_config(replica)) for replica in REPLICAS)
    assert a["global"]["external_labels"].pop("replica") == "a"
    assert b["global"]["external_labels"].pop("replica") == "b"
    assert a == b
    # Alerts leave without the replica label, for every Alertmanager of the cluster.
    assert {"action": "labeldrop", "regex": "replica"} in a["alerting"]["alert_relabel_configs"]
    (targets,) = (
        c["targets"] for am in a["alerting"]["alertmanagers"] for c in am["static_configs"]
    )
    assert len(targets) == 2


def test_the_replicas_scrape_and_evaluate_as_the_single_server_does() -> None:
    """Intervals and scrape jobs are the single server's (prometheus/prometheus.yml)."""
    single = _load(REPO.prometheus_config)
    replica = _load(_replica_config("a"))
    labels = replica["global"].pop("external_labels")
    assert set(labels) == {"cluster", "replica"}
    assert replica["global"] == single["global"]
    assert replica["scrape_configs"] == single["scrape_configs"]
    assert [(HA_DIR / path).resolve() for path in replica["rule_files"]] == [REPO.rules]


@pytest.mark.parametrize("replica", REPLICAS)
def test_the_replica_configs_are_valid(replica: str) -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(_replica_config(replica))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_documents_the_cluster_flags() -> None:
    readme = (HA_DIR / "README.md").read_text()
    for needle in ("--cluster.listen-address", "--cluster.peer", "alert_relabel_configs"):
        assert needle in readme
