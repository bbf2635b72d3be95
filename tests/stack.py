"""Prometheus and Alertmanager as real processes for tests, with the repository's files.

The configuration, rules and routing are the committed ones, rendered by
``exporter.demo.stack`` in the one documented way (its module doc): addresses replaced,
and every duration (scrape and evaluation intervals, each ``for:``,
Alertmanager's group_wait/group_interval/repeat_interval) multiplied by one
factor, ``StackTiming.factor``, with floors (1 s; a scrape timeout 5 s, capped by
the scrape interval). ``FAST`` turns minutes into seconds. No test keeps a copy
of a rule.

- ``PrometheusAPI``: instant queries, alerts, and a bounded ``wait_for``.
- ``NotificationSink``: an Alertmanager webhook target on loopback in the test
  process; it keeps every notification and lets a test wait for one.
- ``governance_stack()``: Alertmanager sending to a sink and Prometheus scraping an
  exporter, both with the repository's files; stopped on exit, even on failure.
- ``run_prometheus``/``run_alertmanager`` (re-exported) start either alone with
  any config, on a free port, and wait until it is ready.
- Many nodes (prometheus/ha/, prometheus/global/): ``render_ha_prometheus_config``
  renders an HA replica's config the same way, keeping its alert relabeling;
  ``alertmanager_cluster`` starts clustered Alertmanagers; ``seed_healthy_node`` and
  ``start_credit_outage`` play the 2026-02-15 incident as tests/test_e2e.py does;
  ``run_victoria_metrics`` starts the global store (Debian: victoria-metrics).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from harness import Database, free_port, scenario, stop_process

from exporter.demo.pager import WebhookReceiver
from exporter.demo.stack import (
    FASTEST_FACTOR,
    Monitoring,
    RepoFiles,
    StackTiming,
    find_alertmanager,
    find_prometheus,
    render_alertmanager_config,
    render_prometheus_config,
    render_rules,
    run_alertmanager,
    run_monitoring,
    run_prometheus,
)

__all__ = [
    "FAST",
    "GLOBAL_DIR",
    "HA_DIR",
    "HEALTHY_BALANCE",
    "REPO",
    "NotificationSink",
    "Peer",
    "PrometheusAPI",
    "Received",
    "Stack",
    "StackTiming",
    "VictoriaMetrics",
    "alertmanager_cluster",
    "find_alertmanager",
    "find_prometheus",
    "find_victoria_metrics",
    "governance_stack",
    "render_alertmanager_config",
    "render_ha_prometheus_config",
    "render_prometheus_config",
    "render_rules",
    "run_alertmanager",
    "run_prometheus",
    "run_victoria_metrics",
    "scenario",
    "seed_healthy_node",
    "start_credit_outage",
]

REPO = RepoFiles(Path(__file__).resolve().parent.parent)
# 1m -> 3s, 10m -> 30s; nothing below 1 s; the scrape timeout 20s -> 3s (the interval)
FAST = StackTiming(factor=FASTEST_FACTOR)
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.25) -> T:
    """Poll ``check`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class PrometheusAPI:
    """Prometheus' HTTP API at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def values(self, expr: str) -> list[float]:
        return [float(sample["value"][1]) for sample in self.query(expr)]

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts: ``{"labels", "annotations", "state", "value"}``."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets")["activeTargets"])


@dataclass(frozen=True)
class Received:
    """One webhook notification as Alertmanager sent it."""

    receiver: str
    payload: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def status(self) -> str:
        return str(self.payload.get("status"))

    @property
    def group_labels(self) -> dict[str, str]:
        return dict(self.payload.get("groupLabels", {}))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.payload.get("alerts", []))

    def has_alert(self, status: str | None = None, **labels: str) -> bool:
        """An alert in it with these labels (and this alert status, if given)."""
        return any(
            (status is None or alert.get("status") == status)
            and all(alert.get("labels", {}).get(k) == v for k, v in labels.items())
            for alert in self.alerts
        )


class NotificationSink:
    """Alertmanager's webhook target for a test: ``url_for("pager")`` and friends."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._received: list[Received] = []
        self._receiver = WebhookReceiver("127.0.0.1", 0, self._keep)

    def _keep(self, receiver: str, payload: dict[str, Any]) -> None:
        with self._changed:
            self._received.append(Received(receiver, payload))
            self._changed.notify_all()

    def url_for(self, receiver: str) -> str:
        return self._receiver.url_for(receiver)

    def received(self, receiver: str | None = None) -> list[Received]:
        with self._changed:
            return [r for r in self._received if receiver is None or r.receiver == receiver]

    def wait_for(
        self, receiver: str, matches: Callable[[Received], bool], *, timeout: float, what: str
    ) -> Received:
        """The first notification to ``receiver`` that ``matches``, waiting at most ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for notification in self._received:
                    if notification.receiver == receiver and matches(notification):
                        return notification
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.receiver, r.status, r.group_labels) for r in self._received]
                    raise AssertionError(
                        f"no {what} reached {receiver!r} within {timeout:.0f} s; got {seen}"
                    )
                self._changed.wait(left)

    def __enter__(self) -> NotificationSink:
        self._receiver.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._receiver.close()


@dataclass
class Stack:
    prometheus: PrometheusAPI
    alertmanager_url: str
    monitoring: Monitoring
    timing: StackTiming

    @property
    def pids(self) -> list[int]:
        servers = [self.monitoring.prometheus, self.monitoring.alertmanager]
        return [server.process.pid for server in servers if server is not None]


@contextlib.contextmanager
def governance_stack(
    workdir: Path, *, exporter_target: str, sink: NotificationSink, timing: StackTiming = FAST
) -> Iterator[Stack]:
    """The repository's Alertmanager (pager and ticket → ``sink``) and Prometheus
    (job ``governance`` → ``exporter_target``, ``host:port``), both stopped on exit."""
    if find_prometheus() is None or find_alertmanager() is None:
        raise AssertionError(
            "prometheus and alertmanager must be on PATH: apt-get install prometheus "
            "prometheus-alertmanager"
        )
    webhooks = {name: sink.url_for(name) for name in ("pager", "ticket")}
    with run_monitoring(
        REPO, workdir, exporter_target=exporter_target, webhook_urls=webhooks, timing=timing
    ) as monitoring:
        assert monitoring.alertmanager is not None
        yield Stack(
            PrometheusAPI(monitoring.prometheus.url),
            monitoring.alertmanager.url,
            monitoring,
            timing,
        )


# --- many nodes: a Prometheus HA pair, clustered Alertmanagers, a global store ------------
#
# The seeding helpers (``scenario``) come through harness.py, which follows the demo
# package wherever it lives: tests that need them import them from here.

HA_DIR = REPO.root / "prometheus" / "ha"
GLOBAL_DIR = REPO.root / "prometheus" / "global"
HEALTHY_BALANCE = 500_000_000  # with 96M spent a day: 125 h of runway, green


def seed_healthy_node(database: Database) -> dict[str, str]:
    """A green node with a day of successful hourly runs; its schedules by charter."""
    with database.connect() as conn:
        _, schedules = scenario.seed_governance(
            conn,
            database.schema,
            datetime.now(UTC),
            balance_credits=HEALTHY_BALANCE,
            hours=24,
        )
    return schedules


def start_credit_outage(database: Database, schedules: dict[str, str]) -> None:
    """The 2026-02-15 outage, as tests/test_e2e.py plays it: balance 0, the latest run
    of every schedule rejected with ``insufficient_credits``."""
    now = datetime.now(UTC)
    with database.connect() as conn:
        scenario.set_balance(conn, scenario.system_tenant(conn), 0)
        for offset, schedule_id in enumerate(schedules.values()):
            scenario.add_run(
                conn,
                database.schema,
                schedule_id,
                now - timedelta(seconds=offset + 1),
                "error",
                error_message="insufficient_credits",
                error_code="insufficient_credits",
                completed_at=now,
            )


def render_ha_prometheus_config(
    text: str,
    *,
    targets: dict[str, list[str]],
    rule_files: list[Path],
    alertmanagers: list[str],
    timing: StackTiming,
    keep_alert_relabeling: bool = True,
    remote_write: list[dict[str, Any]] | None = None,
) -> str:
    """An HA replica's config (prometheus/ha/), rendered like the single server's
    (``render_prometheus_config``: addresses and durations), with its
    ``alert_relabel_configs`` kept (``keep_alert_relabeling=False``: removed, the
    misconfiguration that pages twice) and ``remote_write`` set if given."""
    committed = yaml.safe_load(text)
    config = yaml.safe_load(
        render_prometheus_config(
            text,
            targets=targets,
            rule_files=rule_files,
            alertmanagers=alertmanagers,
            timing=timing,
        )
    )
    relabeling = committed.get("alerting", {}).get("alert_relabel_configs")
    if keep_alert_relabeling and relabeling and "alerting" in config:
        config["alerting"]["alert_relabel_configs"] = relabeling
    if remote_write is not None:
        config["remote_write"] = remote_write
    return str(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Peer:
    """One started member of an Alertmanager cluster."""

    process: subprocess.Popen[bytes]
    url: str
    cluster_address: str
    log_path: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.load(response)

    def cluster(self) -> dict[str, Any]:
        """``/api/v2/status``'s cluster: ``{"status": "ready", "peers": [...]}``."""
        return dict(self.get("/api/v2/status")["cluster"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/alerts"))


def _ready(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
    return False


@contextlib.contextmanager
def alertmanager_cluster(
    workdir: Path,
    config_text: str,
    *,
    size: int = 2,
    peer_timeout: str = "3s",
    clustered: bool = True,
    ready_timeout: float = 60,
) -> Iterator[list[Peer]]:
    """``size`` Alertmanagers with one config, gossiping on loopback (each started with
    every other one as ``--cluster.peer``), yielded once the cluster has settled with
    all of them; ``clustered=False``: the same number, each alone. ``peer_timeout``:
    how long the second waits for the first's notification before sending its own
    (Alertmanager's default is 15s; on loopback gossip takes milliseconds)."""
    binary = find_alertmanager()
    if binary is None:
        raise AssertionError(
            "alertmanager must be on PATH: apt-get install prometheus-alertmanager"
        )
    web_ports = [free_port() for _ in range(size)]
    gossip = [f"127.0.0.1:{free_port()}" for _ in range(size)]
    peers: list[Peer] = []
    try:
        for index, (web_port, address) in enumerate(zip(web_ports, gossip, strict=True)):
            home = workdir / f"alertmanager-{index}"
            home.mkdir(parents=True, exist_ok=True)
            (home / "alertmanager.yml").write_text(config_text, encoding="utf-8")
            argv = [
                binary,
                f"--config.file={home / 'alertmanager.yml'}",
                f"--storage.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
            ]
            if clustered:
                argv += [
                    f"--cluster.listen-address={address}",
                    f"--cluster.advertise-address={address}",
                    f"--cluster.peer-timeout={peer_timeout}",
                    *(f"--cluster.peer={other}" for other in gossip if other != address),
                ]
            else:
                argv.append("--cluster.listen-address=")
            log_path = home / "alertmanager.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            peers.append(Peer(process, f"http://127.0.0.1:{web_port}", address, log_path))
        for peer in peers:
            wait_for(
                lambda peer=peer: peer.process.poll() is None and _ready(peer.url + "/-/ready"),
                timeout=ready_timeout,
                what=f"Alertmanager at {peer.url} ({peer.log_path})",
            )
        if clustered:
            for peer in peers:
                wait_for(
                    lambda peer=peer: (
                        peer.cluster().get("status") == "ready"
                        and len(peer.cluster().get("peers", [])) == size
                    ),
                    timeout=ready_timeout,
                    what=f"Alertmanager {peer.url} to settle in a cluster of {size}",
                )
        yield peers
    finally:
        for peer in peers:
            stop_process(peer.process)


class VictoriaMetrics:
    """A started single-node VictoriaMetrics: Prometheus' query API and raw export."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self.api = PrometheusAPI(url)

    @property
    def write_url(self) -> str:
        """Where Prometheus' ``remote_write`` sends."""
        return f"{self.url}/api/v1/write"

    def export(self, selector: str) -> list[dict[str, Any]]:
        """The stored samples of ``selector``'s series (deduplicated, if configured):
        ``[{"metric": {...}, "values": [...], "timestamps": [ms, ...]}, ...]``."""
        query = urllib.parse.urlencode({"match[]": selector})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as response:
            return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def find_victoria_metrics() -> str | None:
    return shutil.which("victoria-metrics")


@contextlib.contextmanager
def run_victoria_metrics(
    workdir: Path, args: list[str], *, ready_timeout: float = 60
) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics with ``args`` (no storage path or listen address: those are set
    here, to ``workdir`` and a free loopback port); stopped on exit."""
    binary = find_victoria_metrics()
    if binary is None:
        raise AssertionError("victoria-metrics must be on PATH (Debian: victoria-metrics)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        binary,
        *args,
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
    ]
    log_path = workdir / "victoria-metrics.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    store = VictoriaMetrics(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for(
            lambda: process.poll() is None and _ready(store.url + "/health"),
            timeout=ready_timeout,
            what=f"VictoriaMetrics at {store.url} ({log_path})",
        )
        yield store
    finally:
        stop_process(process)
