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
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from exporter.demo.driver import WebhookReceiver
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
    "REPO",
    "NotificationSink",
    "PrometheusAPI",
    "Received",
    "Stack",
    "StackTiming",
    "find_alertmanager",
    "find_prometheus",
    "governance_stack",
    "render_alertmanager_config",
    "render_prometheus_config",
    "render_rules",
    "run_alertmanager",
    "run_prometheus",
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
