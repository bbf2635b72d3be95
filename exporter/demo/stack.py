"""Prometheus and Alertmanager for the demo and the tests, run with the repository's files.

How the committed Prometheus and Alertmanager files are changed, here and in the
end-to-end test (``tests/stack.py``), and in no other way: addresses are replaced
(scrape targets, the Alertmanager target, the rule file paths, the webhook URLs
of ``${PAGER_WEBHOOK_URL}``/``${TICKET_WEBHOOK_URL}``), and every duration is
multiplied by one factor (``StackTiming``): the global scrape and evaluation
intervals and scrape timeout, each rule group's ``interval``, each rule's
``for:`` and Alertmanager's ``group_wait``, ``group_interval`` and
``repeat_interval``. The demo's factor is 1/``--speed`` (an alert that waits 10
minutes waits 10 demo minutes), but never below ``FASTEST_FACTOR`` (1/20): at the
default ``--speed 60`` durations are divided by 20, not 60. A scaled duration is
never below 1 s, and a scaled scrape timeout is kept at 5 s (or the committed
value, if shorter) unless that exceeds the scaled scrape interval, which caps it:
a 1 s timeout would turn one slow scrape on a busy machine into ``up == 0``.
Expressions (thresholds, range windows) are never touched: there is one copy of
the rules, in ``prometheus/rules/``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.demo.localpg import ChildProcess, free_port, http_ok, spawn, wait_until
from exporter.startup import UsageError

# --- the repository's files -------------------------------------------------------------


@dataclass(frozen=True)
class RepoFiles:
    """The checkout's files the stack runs with."""

    root: Path

    @property
    def role_sql(self) -> Path:
        return self.root / "sql" / "monitoring-role.sql"

    @property
    def prometheus_config(self) -> Path:
        return self.root / "prometheus" / "prometheus.yml"

    @property
    def rules(self) -> Path:
        return self.root / "prometheus" / "rules" / "governance.rules.yml"

    @property
    def alertmanager_config(self) -> Path:
        return self.root / "prometheus" / "alertmanager.yml"

    @classmethod
    def find(cls, *candidates: Path) -> RepoFiles:
        """The first candidate (default: this package's checkout, then the current
        directory) that has ``sql/monitoring-role.sql``."""
        candidates = candidates or (Path(__file__).resolve().parent.parent, Path.cwd())
        for root in candidates:
            if cls(root).role_sql.is_file():
                return cls(root)
        raise UsageError(
            "demo needs a checkout of the governance-exporter repository (sql/, prometheus/):"
            " install it with 'pip install -e .' from the clone, or run it from the clone"
        )


# --- rendering the committed files --------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1h30m``, ``500ms``, ``0s``) in seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def prometheus_duration(seconds: float) -> str:
    """Seconds as a compact Prometheus duration: ``5m``, ``1m30s``, ``1s500ms``, ``0s``."""
    millis = round(seconds * 1000)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# Prometheus sends its first scrape about 5 s after start (service discovery's
# update delay, a constant), so the shortest `for:` of the rules (5m, exporter
# down or absent) must stay well above that: a factor below 1/20 would page
# GovernanceExporterDown at every start.
FASTEST_FACTOR = 1 / 20


@dataclass(frozen=True)
class StackTiming:
    """One factor for every duration of the committed files (see the module doc).

    A scaled duration is rounded up to ``minimum_seconds`` (zero stays zero); a
    scaled scrape timeout is rounded up to ``minimum_scrape_timeout_seconds`` (or
    the committed timeout, if shorter) and never exceeds its scrape interval.
    ``factor=1``: as committed.
    """

    factor: float = 1.0
    minimum_seconds: float = 1.0
    minimum_scrape_timeout_seconds: float = 5.0

    def scale(self, duration: str) -> str:
        seconds = parse_duration(str(duration))
        if seconds == 0:
            return "0s"
        return prometheus_duration(max(seconds * self.factor, self.minimum_seconds))

    def seconds(self, duration: str) -> float:
        return parse_duration(self.scale(duration))

    def scale_scrape_timeout(self, timeout: str, scaled_interval: str | None) -> str:
        """The committed ``timeout`` scaled, but not below the minimum scrape timeout
        (nor above the committed one) and never above ``scaled_interval``."""
        committed = parse_duration(str(timeout))
        seconds = max(self.seconds(timeout), min(committed, self.minimum_scrape_timeout_seconds))
        if scaled_interval is not None:
            seconds = min(seconds, parse_duration(str(scaled_interval)))
        return prometheus_duration(seconds)


def _yaml() -> Any:
    try:
        import yaml  # noqa: PLC0415 - only the Prometheus side of the demo needs it
    except ImportError as exc:  # pragma: no cover - PyYAML is a dependency
        raise UsageError("the demo's Prometheus side needs PyYAML: pip install PyYAML") from exc
    return yaml


def _dump(document: Any) -> str:
    return str(_yaml().safe_dump(document, sort_keys=False, allow_unicode=True, width=100))


def render_rules(text: str, timing: StackTiming) -> str:
    """The rule file with each group's ``interval`` and each rule's ``for:`` scaled."""
    document = _yaml().safe_load(text)
    for group in document["groups"]:
        if "interval" in group:
            group["interval"] = timing.scale(group["interval"])
        for rule in group["rules"]:
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = timing.scale(rule[key])
    return _dump(document)


def _scale_scrape(config: dict[str, Any], timing: StackTiming, defaults: dict[str, Any]) -> None:
    """Scale one scrape config (``defaults``: the global one, already scaled)."""
    for key in ("scrape_interval", "evaluation_interval"):
        if key in config:
            config[key] = timing.scale(config[key])
    interval = config.get("scrape_interval", defaults.get("scrape_interval"))
    if "scrape_timeout" in config:
        config["scrape_timeout"] = timing.scale_scrape_timeout(config["scrape_timeout"], interval)


def render_prometheus_config(
    text: str,
    *,
    targets: Mapping[str, list[str]],
    rule_files: list[Path],
    alertmanagers: list[str],
    timing: StackTiming,
) -> str:
    """The scrape config with new addresses and scaled durations.

    ``targets`` maps a job name to its new targets (jobs not named keep theirs);
    ``alertmanagers`` replaces every Alertmanager target (empty: no alerting).
    """
    config = _yaml().safe_load(text)
    global_config = config.setdefault("global", {})
    _scale_scrape(global_config, timing, {})
    config["rule_files"] = [str(path) for path in rule_files]
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
    else:
        config.pop("alerting", None)
    for job in config.get("scrape_configs", []):
        _scale_scrape(job, timing, global_config)
        if job["job_name"] in targets:
            job.pop("file_sd_configs", None)
            job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
    return _dump(config)


def _scale_route(route: dict[str, Any], timing: StackTiming) -> None:
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route:
            route[key] = timing.scale(route[key])
    for child in route.get("routes", []):
        _scale_route(child, timing)


def render_alertmanager_config(text: str, *, env: Mapping[str, str], timing: StackTiming) -> str:
    """What ``envsubst`` does at deploy (``${NAME}`` from ``env``), with scaled timers."""
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(env))
    if missing:
        raise ValueError(f"no value for {', '.join(missing)} in the Alertmanager config")
    config = _yaml().safe_load(_PLACEHOLDER.sub(lambda m: env[m.group(1)], text))
    _scale_route(config["route"], timing)
    return _dump(config)


# --- Prometheus and Alertmanager as child processes -----------------------------------


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


def find_alertmanager() -> str | None:
    """Upstream's ``alertmanager``, or Debian's ``prometheus-alertmanager``."""
    return shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


@dataclass
class Server:
    """A started Prometheus or Alertmanager."""

    process: ChildProcess
    url: str

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def run_prometheus(
    binary: str,
    workdir: Path,
    config_text: str,
    rules: Mapping[str, str],
    *,
    timing: StackTiming = StackTiming(),
    ready_timeout: float = 60,
) -> Iterator[Server]:
    """Prometheus on a free loopback port with ``config_text``, whose ``rule_files``
    should name ``workdir/<name>`` for each of ``rules``; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (workdir / name).write_text(text, encoding="utf-8")
    config = workdir / "prometheus.yml"
    config.write_text(config_text, encoding="utf-8")
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--rules.alert.resend-delay={timing.scale('1m')}",
    ]
    server = Server(
        spawn("prometheus", argv, workdir / "prometheus.log"), f"http://127.0.0.1:{port}"
    )
    try:
        wait_until(
            lambda: http_ok(server.url + "/-/ready"),
            what=f"Prometheus at {server.url}",
            timeout=ready_timeout,
            child=server.process,
        )
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def run_alertmanager(
    binary: str, workdir: Path, config_text: str, *, ready_timeout: float = 60
) -> Iterator[Server]:
    """Alertmanager on a free loopback port, clustering off; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(config_text, encoding="utf-8")
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: a lone, local Alertmanager
    ]
    server = Server(
        spawn("alertmanager", argv, workdir / "alertmanager.log"), f"http://127.0.0.1:{port}"
    )
    try:
        wait_until(
            lambda: http_ok(server.url + "/-/ready"),
            what=f"Alertmanager at {server.url}",
            timeout=ready_timeout,
            child=server.process,
        )
        yield server
    finally:
        server.stop()


@dataclass
class Monitoring:
    prometheus: Server
    alertmanager: Server | None


@contextlib.contextmanager
def run_monitoring(
    repo: RepoFiles,
    workdir: Path,
    *,
    exporter_target: str,
    webhook_urls: Mapping[str, str] | None,
    timing: StackTiming,
) -> Iterator[Monitoring]:
    """Prometheus with the repository's config and rules scraping ``exporter_target``
    (job ``governance``), and, given webhook URLs for ``pager`` and ``ticket`` and an
    Alertmanager binary, Alertmanager with the repository's routing sending there."""
    prometheus = find_prometheus()
    if prometheus is None:
        raise FileNotFoundError("prometheus is not on PATH")
    alertmanager = find_alertmanager() if webhook_urls is not None else None
    with contextlib.ExitStack() as stack:
        am_server = None
        if alertmanager is not None and webhook_urls is not None:
            env = {f"{name.upper()}_WEBHOOK_URL": url for name, url in webhook_urls.items()}
            am_config = render_alertmanager_config(
                repo.alertmanager_config.read_text(encoding="utf-8"), env=env, timing=timing
            )
            am_server = stack.enter_context(
                run_alertmanager(alertmanager, workdir / "alertmanager", am_config)
            )
        prom_dir = workdir / "prometheus"
        config = render_prometheus_config(
            repo.prometheus_config.read_text(encoding="utf-8"),
            targets={"governance": [exporter_target]},
            rule_files=[prom_dir / repo.rules.name],
            alertmanagers=[am_server.url.removeprefix("http://")] if am_server else [],
            timing=timing,
        )
        rules = {repo.rules.name: render_rules(repo.rules.read_text(encoding="utf-8"), timing)}
        prom_server = stack.enter_context(
            run_prometheus(prometheus, prom_dir, config, rules, timing=timing)
        )
        yield Monitoring(prom_server, am_server)
