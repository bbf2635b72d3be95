"""``governance-exporter demo``: the whole stack on this machine, without Docker.

It starts a throwaway PostgreSQL from local binaries (``exporter.demo.localpg``), loads
a Cogni schema and the least-privilege role of ``sql/monitoring-role.sql``, seeds
a node with a demo day of history and keeps writing its activity
(``exporter.demo.driver``: by default today's operator node with the attribution
ledger, healthy, then its provider unfunded, then its balance under one run's
cost, then topped up, then its webhook plane stopped, then resumed;
``--node 2026-02``, the February node whose balance drains to 0), writes the
node's repo-spec into its temporary directory, serves the exporter on it
through that role (with ``--repo-spec``, a window of one demo day and the ledger's
options in demo time: ``node.exporter_overrides``), and, when the
``prometheus`` and ``alertmanager`` (Debian: ``prometheus-alertmanager``) binaries
are found, runs them with the repository's own configuration, rules and routing
on free loopback ports, with Alertmanager's pages and tickets logged here. It
prints the URLs it has checked answer, the status page first, and the ``check``
command that reads the node with the exporter's own settings; Ctrl-C (exit 130)
or SIGTERM (exit 0) stops everything, at any moment, and removes its temporary
directory.

The repository's files (``sql/``, ``prometheus/``) are read from the checkout
this package is installed from (``pip install -e``), or from the current
directory: the demo is a from-the-clone command.
How the committed files are rendered for it: ``exporter.demo.stack``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql
from pydantic import SecretStr

from exporter.app import App, build_app
from exporter.demo import node, scenario
from exporter.demo.driver import DemoDriver
from exporter.demo.localpg import (
    LocalPostgres,
    PostgresNotFound,
    free_port,
    http_ok,
    throwaway_postgres,
)
from exporter.demo.pager import NotificationLog, WebhookReceiver
from exporter.demo.stack import (
    FASTEST_FACTOR,
    Monitoring,
    RepoFiles,
    StackTiming,
    find_alertmanager,
    find_prometheus,
    run_monitoring,
)
from exporter.demo.story import DriverOptions, add_driver_arguments, options_from
from exporter.settings import CHECK, Settings, option_flag, options_of, split_host_port
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_08, SCHEMA_2026_10
from exporter.startup import UsageError, configure_logging, load_settings

logger = logging.getLogger(__name__)


DEMO_DATABASE = "cogni"
MONITOR_ROLE = "governance_exporter"
PAGER_RECEIVERS = ("pager", "ticket")
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
# Each node's own schema; --schema may load another that can hold it.
NODE_SCHEMAS = {node.NODE_CURRENT: SCHEMA_2026_08, node.NODE_FEBRUARY: SCHEMA_2026_02}
SCHEMAS_FOR = {
    node.NODE_CURRENT: (SCHEMA_2026_08, SCHEMA_2026_10, SCHEMA_2026_03),
    node.NODE_FEBRUARY: (SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_10),
}
# Prometheus' alerts page: upstream's UI, or the classic one (Debian's package
# has no assets for the new UI, whose /alerts answers 404 there).
PROMETHEUS_ALERT_PAGES = ("/alerts", "/classic/alerts")
PROG = "governance-exporter"
# What `demo --help` shows as the default of an exporter option, where the demo's is
# not the settings' own (exporter.cli reads it).
SHOWN_DEFAULTS = {"listen_address": "a free port on 127.0.0.1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema",
        choices=(SCHEMA_2026_08, SCHEMA_2026_10, SCHEMA_2026_03, SCHEMA_2026_02),
        default=None,
        help="Cogni schema version to load (default: the node's own, 2026-08 (the "
        "attribution ledger's, schema-2026-08-full.sql) for the current node, 2026-02 for "
        "--node 2026-02; the current node needs 2026-03 or later, and has receipts and "
        "epochs only on 2026-08)",
    )
    parser.add_argument(
        "--no-prometheus",
        action="store_true",
        help="do not start Prometheus and Alertmanager even when they are installed",
    )
    add_driver_arguments(parser)


def schema_for(args: argparse.Namespace) -> str:
    """The schema to load, or ``UsageError`` when it cannot hold the node."""
    schema = str(args.schema or NODE_SCHEMAS[args.node])
    if schema not in SCHEMAS_FOR[args.node]:
        raise UsageError(
            f"--schema {schema} cannot hold the {args.node} node: use "
            + " or ".join(SCHEMAS_FOR[args.node])
        )
    return schema


# --- the demo database ----------------------------------------------------------------


def create_demo_database(server: LocalPostgres, schema: str, repo: RepoFiles) -> tuple[str, str]:
    """A database with the schema and the monitoring role; (owner URL, monitor URL)."""
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DATABASE)))
    owner_url = server.url(DEMO_DATABASE)
    monitor_password = server.password + "-monitor"
    with psycopg.connect(owner_url, autocommit=True) as conn:
        scenario.load_schema(conn, schema)
        conn.execute(repo.role_sql.read_text(encoding="utf-8").encode())
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(MONITOR_ROLE), sql.Literal(monitor_password)
            )
        )
    return owner_url, server.url(DEMO_DATABASE, user=MONITOR_ROLE, password=monitor_password)


# --- signals ----------------------------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during start-up."""


@dataclass
class Signals:
    """The demo's stop: the first SIGINT or SIGTERM sets ``stop`` (and is remembered);
    while ``starting`` is set, a second SIGINT raises KeyboardInterrupt, once, to cut a
    long start-up step short (waiting for Prometheus, say). Clean-up is never
    interrupted: after that, signals only set ``stop`` again."""

    stop: threading.Event
    starting: threading.Event
    first: int | None = None

    @classmethod
    def install(cls) -> Signals:
        signals = cls(threading.Event(), threading.Event())
        signals.starting.set()
        signal.signal(signal.SIGINT, signals.handle)
        signal.signal(signal.SIGTERM, signals.handle)
        return signals

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        again = self.stop.is_set()
        if self.first is None:
            self.first = signum
        self.stop.set()
        if again and signum == signal.SIGINT and self.starting.is_set():
            self.starting.clear()
            raise KeyboardInterrupt
        if not again:
            logger.info("received signal %d, stopping", signum)

    @property
    def exit_status(self) -> int:
        """130 after Ctrl-C, as a shell reports it; 0 after SIGTERM, an orderly stop."""
        return 0 if self.first == signal.SIGTERM else EXIT_INTERRUPTED


def _checkpoint(stop: threading.Event) -> None:
    if stop.is_set():
        raise Interrupted


# --- the command ----------------------------------------------------------------------


def _start_thread(stack: contextlib.ExitStack, name: str, target: Callable[[], None]) -> None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    stack.callback(thread.join, 15)


def given_settings(overrides: dict[str, Any]) -> Settings:
    """The exporter options given to the demo (flags, then the environment), checked
    before anything starts: a bad one is a ``UsageError``. The database is the demo's
    own, made later; this placeholder is never connected to."""
    return load_settings(
        {**overrides, "database_url": f"dbname={DEMO_DATABASE}", "database_url_file": None}
    )


def _exporter_address(given: Settings) -> tuple[str, str]:
    """(listen address, the address Prometheus scrapes): --listen-address (or its
    environment variable), else a free loopback port."""
    chosen = "listen_address" in given.model_fields_set
    listen = given.listen_address if chosen else f"127.0.0.1:{free_port()}"
    host, port = split_host_port(listen)
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising, not binding
        host = "127.0.0.1"
    return listen, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _start_exporter(
    stack: contextlib.ExitStack,
    overrides: dict[str, Any],
    *,
    monitor_url: str,
    listen: str,
    options: DriverOptions,
    repo_spec: Path | None,
) -> App:
    settings = load_settings(
        {
            **overrides,
            "database_url": monitor_url,
            "database_url_file": None,
            "listen_address": listen,
            # One demo day, so that failures leave the window as the story says, and
            # the ledger's grace, floor and wait in demo time.
            **node.exporter_overrides(options.speed),
            "repo_spec": repo_spec,
        }
    )
    app = build_app(settings)
    stack.callback(app.close)
    return app


def _write_repo_spec(options: DriverOptions, root: Path) -> Path | None:
    """The current node's .cogni/repo-spec.yaml, in the demo's directory."""
    if options.node != node.NODE_CURRENT:
        return None
    path = root / "repo-spec.yaml"
    path.write_text(node.repo_spec_text(options.speed), encoding="utf-8")
    return path


def _prometheus_alerts_page(url: str) -> str | None:
    """The first of Prometheus' alerts pages that answers here, if any."""
    return next((url + p for p in PROMETHEUS_ALERT_PAGES if http_ok(url + p)), None)


def _every(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _story(options: DriverOptions, schema: str) -> list[str]:
    works = ", ".join(
        f"{w.name} {w.demo_every} (every {_every(w.period.total_seconds())}, cron {w.cron!r})"
        for w in options.works()
        if w.kind != node.RECEIPT or schema == SCHEMA_2026_08  # receipts need the ledger
    )
    day = _every(options.window_seconds)
    if options.node == node.NODE_CURRENT:
        shape = f"today's operator node (schema {schema}), the four February charters retired"
        story = (
            f"healthy for {_every(options.healthy_seconds)}; then the provider unfunded for "
            f"{_every(options.outage_seconds)} (runs fail with provider_unavailable); then the "
            f"balance under one run's cost for {_every(options.outage_seconds)} (runs rejected "
            f"with insufficient_credits); then topped up; {_every(options.healthy_seconds)} "
            f"later the webhook plane stops for {_every(options.webhook_seconds)} (no receipts, "
            "no PR reviews: GovernanceLedgerWebhookSilent), then resumes."
        )
    else:
        shape = f"the node of 2026-02-15 (schema {schema}), four hourly charters"
        story = (
            f"the runway goes green -> yellow -> red -> empty in {_every(options.drain_seconds)}; "
            f"runs are rejected with insufficient_credits for {_every(options.outage_seconds)}; "
            "then topped up."
        )
    return [
        f"governance-exporter demo: {shape}, at {options.speed:g}x speed "
        f"(a demo hour every {_every(3600 / options.speed)}; the exporter's window, one "
        f"demo day, is {day}).",
        f"Its work: {works}.",
        f"The story: {story} The failures leave the window {day} later; every alert resolves.",
    ]


def _program() -> list[str]:
    """How this command was started, to start ``check`` the same way: the console
    script (by its bare name when that is the one on PATH), else ``python -m exporter``."""
    script = sys.argv[0]
    if Path(script).name != PROG:
        return [sys.executable, "-m", "exporter"]
    on_path = shutil.which(PROG)
    if on_path is not None and Path(on_path).resolve() == Path(script).resolve():
        return [PROG]
    return [script]


def _flag_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def check_command(settings: Settings, program: list[str] | None = None) -> str:
    """The ``check`` command line that reads what the exporter of ``settings`` reads, as
    it does: its database URL and every option of check's that is not the default
    (the demo's window and repo-spec; any set in the environment)."""
    words = [*(program or _program()), "check"]
    for name in options_of(CHECK):
        value = getattr(settings, name)
        if value is not None and value != Settings.model_fields[name].default:
            words += [option_flag(name), _flag_value(value)]
    return shlex.join(words)


def _print_banner(
    options: DriverOptions,
    schema: str,
    app: App,
    *,
    monitoring: Monitoring | None,
    owner_url: str,
    repo_spec: Path | None,
    why_no_monitoring: str,
) -> None:
    info = psycopg.conninfo.conninfo_to_dict(owner_url)
    lines = ["", *_story(options, schema), ""]
    lines += [
        f"  status page   {app.server.url}/",
        f"  metrics       {app.server.url}/metrics",
    ]
    if monitoring is not None:
        prometheus = monitoring.prometheus.url
        page = _prometheus_alerts_page(prometheus)
        if page is not None:
            lines.append(f"  prometheus    {page}")
        lines.append(f"  alerts (API)  {prometheus}/api/v1/alerts")
        if monitoring.alertmanager is not None:
            # Debian's prometheus-alertmanager has no web UI: point at its API instead.
            am_url = monitoring.alertmanager.url
            lines.append(
                f"  alertmanager  {am_url}/api/v2/alerts   (pages and tickets are also logged here)"
            )
            if shutil.which("amtool") is not None:
                lines.append(f"                amtool --alertmanager.url={am_url} alert query")
    else:
        lines.append(f"  (no Prometheus/Alertmanager: {why_no_monitoring})")
    lines.append(
        f"  postgres      psql 'postgresql://postgres:{info['password']}@127.0.0.1:"
        f"{info['port']}/{DEMO_DATABASE}'"
    )
    if repo_spec is not None:
        lines.append(f"  repo-spec     {repo_spec}")
    lines += [
        f"  check         {check_command(app.settings)}",
        "                (the status page's verdict and runway in a terminal; add "
        "--output json for JSON)",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _monitoring(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    *,
    repo: RepoFiles,
    root: Path,
    exporter_target: str,
    receiver: WebhookReceiver,
) -> tuple[Monitoring | None, str]:
    if args.no_prometheus:
        return None, "--no-prometheus"
    if find_prometheus() is None:
        return None, "the prometheus binary is not on PATH"
    if find_alertmanager() is None:
        logger.info("alertmanager is not on PATH: running Prometheus alone")
    monitoring = stack.enter_context(
        run_monitoring(
            repo,
            root,
            exporter_target=exporter_target,
            webhook_urls={name: receiver.url_for(name) for name in PAGER_RECEIVERS},
            timing=StackTiming(factor=max(1 / args.speed, FASTEST_FACTOR)),
        )
    )
    return monitoring, ""


def _start(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    *,
    overrides: dict[str, Any],
    repo: RepoFiles,
    stop: threading.Event,
    root: Path,
) -> DemoDriver:
    """Start everything (cleaned up by ``stack``) and print the banner."""
    schema = schema_for(args)
    options = options_from(args)
    server = stack.enter_context(throwaway_postgres(prefix="postgres-", parent=root))
    _checkpoint(stop)
    owner_url, monitor_url = create_demo_database(server, schema, repo)
    driver = DemoDriver(owner_url, options)
    stack.callback(driver.close)
    driver.seed()
    _checkpoint(stop)
    repo_spec = _write_repo_spec(options, root)
    listen, target = _exporter_address(given_settings(overrides))
    app = _start_exporter(
        stack,
        overrides,
        monitor_url=monitor_url,
        listen=listen,
        options=options,
        repo_spec=repo_spec,
    )
    _start_thread(stack, "http", app.serve_forever)
    stack.callback(app.server.shutdown)
    receiver = WebhookReceiver("127.0.0.1", 0, NotificationLog()).start()
    stack.callback(receiver.close)
    monitoring, why_not = _monitoring(
        stack, args, repo=repo, root=root, exporter_target=target, receiver=receiver
    )
    _checkpoint(stop)
    _start_thread(stack, "demo-driver", lambda: driver.run(stop))
    stack.callback(stop.set)  # stops the driver even when we leave by an exception
    _print_banner(
        options,
        schema,
        app,
        monitoring=monitoring,
        owner_url=owner_url,
        repo_spec=repo_spec,
        why_no_monitoring=why_not,
    )
    return driver


def _run_demo(
    args: argparse.Namespace, overrides: dict[str, Any], repo: RepoFiles, signals: Signals
) -> None:
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="govexp-demo-"))
        stack.callback(shutil.rmtree, root, True)
        root.chmod(0o711)  # PostgreSQL may run as another user, in a directory inside
        logger.info("demo state in %s", root)
        try:
            driver = _start(
                stack, args, overrides=overrides, repo=repo, stop=signals.stop, root=root
            )
        finally:
            signals.starting.clear()  # from here on, a second Ctrl-C interrupts nothing
        signals.stop.wait()
        logger.info("stopping")
        if driver.failure is not None:  # the driver's thread set `stop`: it has logged why
            raise RuntimeError(f"the demo driver failed: {driver.describe_failure()}")
    logger.info("stopped; removed %s", root)


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    # Signals first: from here on a Ctrl-C stops the demo quietly, with exit 130.
    signals = Signals.install()
    try:
        configure_logging(given_settings(overrides).log_level)
        schema_for(args)  # a bad --schema is a usage error before anything starts
        repo = RepoFiles.find()
        _checkpoint(signals.stop)
        _run_demo(args, overrides, repo, signals)
    except PostgresNotFound as exc:
        raise UsageError(str(exc)) from None
    except Interrupted:
        logger.info("interrupted during start-up; stopped")
    except KeyboardInterrupt:
        logger.info("interrupted again during start-up; stopped")
        return EXIT_INTERRUPTED
    except (RuntimeError, OSError, psycopg.Error) as exc:
        if signals.first is not None and not driver_failed(exc):
            logger.info("interrupted during start-up (%s); stopped", _first_line(exc))
            return signals.exit_status
        logger.error("demo failed: %s", exc)
        return 1
    return signals.exit_status if signals.first is not None else 0


def driver_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is the driver's failure (the demo failed, whatever stopped it)."""
    return str(exc).startswith("the demo driver failed")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
