"""One global view: two nodes' Prometheus pairs write into VictoriaMetrics, one
series per node comes back.

Each node has its own real exporter on its own real database; each node's HA pair
is prometheus/ha/prometheus-{a,b}.yml (its ``cluster`` label set to the node's
name) with prometheus/global/remote-write.yml added, rendered as in
tests/test_ha.py. They write with Prometheus' own remote write into
VictoriaMetrics run with the flags of prometheus/global/victoria-metrics.default
(``-dedup.minScrapeInterval`` scaled like every other duration, and
``-search.latencyOffset`` shortened so freshly written points are visible at once).

The same four servers also write into a second VictoriaMetrics as a plain store
would receive them (the replica label kept, no deduplication): two series per node.
"""

from __future__ import annotations

import contextlib
import shlex
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
    GLOBAL_DIR,
    HA_DIR,
    HEALTHY_BALANCE,
    REPO,
    StackTiming,
    VictoriaMetrics,
    find_prometheus,
    render_ha_prometheus_config,
    render_rules,
    run_prometheus,
    run_victoria_metrics,
    scenario,
    seed_healthy_node,
    start_credit_outage,
    wait_for,
)

from exporter.snapshot import SCHEMA_2026_03

NODES = ("node-1", "node-2")
REPLICAS = ("a", "b")
METRIC = "governance_credit_balance_credits"
# Generous bound for noisy CI machines: the first scrape comes ~5 s after start and
# remote write sends within 5 s.
WRITE_TIMEOUT = 90


def vm_args(timing: StackTiming, overrides: tuple[str, ...] = ()) -> list[str]:
    """The committed VictoriaMetrics flags, without the ones ``run_victoria_metrics``
    sets, the dedup interval scaled; ``overrides`` (``-flag=value``) appended."""
    text = (GLOBAL_DIR / "victoria-metrics.default").read_text()
    (line,) = (line for line in text.splitlines() if line.startswith("ARGS="))
    (value,) = shlex.split(line.removeprefix("ARGS="))
    args = []
    for arg in shlex.split(value):
        name, _, setting = arg.partition("=")
        if name == "-dedup.minScrapeInterval":
            args.append(f"{name}={timing.scale(setting)}")
        elif name not in {"-storageDataPath", "-httpListenAddr"}:
            args.append(arg)
    return [*args, *overrides]


def _remote_write(url: str, *, keep_replica: bool) -> list[dict[str, Any]]:
    blocks = yaml.safe_load((GLOBAL_DIR / "remote-write.yml").read_text())["remote_write"]
    rendered = []
    for committed in blocks:
        block = {**committed, "url": url}
        if keep_replica:
            block.pop("write_relabel_configs", None)
        rendered.append(block)
    return rendered


def _replica_config(node: str, replica: str, **render: Any) -> str:
    text = (HA_DIR / f"prometheus-{replica}.yml").read_text()
    document = yaml.safe_load(text)
    document["global"]["external_labels"]["cluster"] = node
    return render_ha_prometheus_config(yaml.safe_dump(document, sort_keys=False), **render)


@contextlib.contextmanager
def _node_pairs(
    workdir: Path, exporters: dict[str, str], stores: tuple[VictoriaMetrics, VictoriaMetrics]
) -> Iterator[None]:
    """Both replicas of every node, writing to ``stores`` (global, plain)."""
    binary = find_prometheus()
    assert binary is not None, "prometheus must be on PATH (Debian: prometheus)"
    deduplicating, plain = stores
    rules = {REPO.rules.name: render_rules(REPO.rules.read_text(), FAST)}
    with contextlib.ExitStack() as servers:
        for node, exporter_url in exporters.items():
            for replica in REPLICAS:
                home = workdir / f"{node}-{replica}"
                config = _replica_config(
                    node,
                    replica,
                    targets={"governance": [exporter_url.removeprefix("http://")]},
                    rule_files=[home / REPO.rules.name],
                    alertmanagers=[],
                    timing=FAST,
                    remote_write=[
                        *_remote_write(deduplicating.write_url, keep_replica=False),
                        *_remote_write(plain.write_url, keep_replica=True),
                    ],
                )
                servers.enter_context(run_prometheus(binary, home, config, rules, timing=FAST))
        yield


def _series(store: VictoriaMetrics) -> list[dict[str, str]]:
    return [dict(sample["metric"]) for sample in store.api.query(METRIC)]


def test_two_nodes_by_two_replicas_read_back_as_one_series_per_node(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    healthy, empty = make_database(SCHEMA_2026_03), make_database(SCHEMA_2026_03)
    seed_healthy_node(healthy)
    start_credit_outage(empty, seed_healthy_node(empty))
    interval = FAST.seconds(
        yaml.safe_load(REPO.prometheus_config.read_text())["global"]["scrape_interval"]
    )
    fresh = ("-search.latencyOffset=1s",)
    with (
        run_exporter(healthy.monitor_url) as node_1,
        run_exporter(empty.monitor_url) as node_2,
        run_victoria_metrics(tmp_path / "global", vm_args(FAST, fresh)) as global_store,
        run_victoria_metrics(tmp_path / "plain", [*fresh]) as plain_store,
        _node_pairs(
            tmp_path,
            {"node-1": node_1.url, "node-2": node_2.url},
            (global_store, plain_store),
        ),
    ):
        # Without deduplication: every replica's series, two per node.
        wait_for(
            lambda: len(_series(plain_store)) == len(NODES) * len(REPLICAS),
            timeout=WRITE_TIMEOUT,
            what=f"{METRIC} from all four replicas in the plain store",
        )
        plain = Counter((s["cluster"], s["replica"]) for s in _series(plain_store))
        assert plain == {(n, r): 1 for n in NODES for r in REPLICAS}
        # Let both replicas' samples overlap for a few scrape intervals.
        time.sleep(3 * interval)

        samples = global_store.api.query(METRIC)
        assert sorted(s["metric"]["cluster"] for s in samples) == sorted(NODES)
        assert all("replica" not in s["metric"] for s in samples)
        balances = {s["metric"]["cluster"]: float(s["value"][1]) for s in samples}
        assert balances == {"node-1": HEALTHY_BALANCE, "node-2": 0}
        assert {s["metric"]["account"] for s in samples} == {scenario.SYSTEM_SLUG}

        # Both replicas wrote into each node's one series; at most one sample of
        # it is left in each deduplication interval.
        dedup = FAST.seconds("1m") * 1000
        for series in global_store.export(METRIC):
            buckets = Counter(-(-ts // dedup) for ts in series["timestamps"])
            assert len(series["timestamps"]) >= 3, series
            assert max(buckets.values()) == 1, (series["metric"], sorted(series["timestamps"]))


# --- the example files themselves ------------------------------------------------------


def test_the_dedup_interval_is_the_replicas_scrape_interval() -> None:
    args = vm_args(StackTiming())
    replica = yaml.safe_load((HA_DIR / "prometheus-a.yml").read_text())
    assert f"-dedup.minScrapeInterval={replica['global']['scrape_interval']}" in args


def test_the_remote_write_block_drops_only_the_replica_label() -> None:
    (block,) = yaml.safe_load((GLOBAL_DIR / "remote-write.yml").read_text())["remote_write"]
    assert block["url"].endswith("/api/v1/write")
    assert block["write_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]


@pytest.mark.parametrize(
    "needle",
    [
        "-dedup.minScrapeInterval",
        "--query.replica-label",
        "thanos receive",
        "__replica__",
        "ha_cluster_label",
        "accept_ha_samples",
    ],
)
def test_the_readme_documents_each_store(needle: str) -> None:
    assert needle in (GLOBAL_DIR / "README.md").read_text()
