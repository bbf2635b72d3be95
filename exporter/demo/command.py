"""``governance-exporter demo``: the whole stack on this machine, without Docker.

It starts a throwaway PostgreSQL from local binaries (``exporter.demo.localpg``), loads
a Cogni schema and the least-privilege role of ``sql/monitoring-role.sql``, seeds
a node with a day of history and keeps writing its activity
(``exporter.demo.driver``: a balance that drains, green → yellow → red → empty →
topped up), serves the exporter on it through that role, and, when the
``prometheus`` and ``alertmanager`` (Debian: ``prometheus-alertmanager``) binaries
are found, runs them with the repository's own configuration, rules and routing
on free loopback ports, with Alertmanager's pages and tickets logged here. It
prints the URLs; Ctrl-C or SIGTERM stops everything and removes its temporary
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
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql

from exporter.app import App, build_app
from exporter.demo import scenario
from exporter.demo.driver import (
    DemoDriver,
    WebhookReceiver,
    add_driver_arguments,
    log_notification,
    options_from,
)
from exporter.demo.localpg import (
    LocalPostgres,
    PostgresNotFound,
    free_port,
    throwaway_postgres,
)
from exporter.demo.stack import (
    FASTEST_FACTOR,
    Monitoring,
    RepoFiles,
    StackTiming,
    find_alertmanager,
    find_prometheus,
    run_monitoring,
)
from exporter.settings import split_host_port
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03
from exporter.startup import UsageError, configure_logging, load_settings, stop_on_signals

logger = logging.getLogger(__name__)


DEMO_DATABASE = "cogni"
MONITOR_ROLE = "governance_exporter"
PAGER_RECEIVERS = ("pager", "ticket")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema",
        choices=(SCHEMA_2026_03, SCHEMA_2026_02),
        default=SCHEMA_2026_03,
        help="Cogni schema version to load (default: %(default)s)",
    )
    parser.add_argument(
        "--no-prometheus",
        action="store_true",
        help="do not start Prometheus and Alertmanager even when they are installed",
    )
    add_driver_arguments(parser)


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


# --- the command ----------------------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during start-up."""


def _checkpoint(stop: threading.Event) -> None:
    if stop.is_set():
        raise Interrupted


def _abort_on_second_interrupt(stop: threading.Event, starting: threading.Event) -> None:
    """While ``starting`` is set, a Ctrl-C after the first one raises KeyboardInterrupt.

    The first Ctrl-C (``stop_on_signals``) only sets ``stop``, which start-up checks
    between its steps; a second one interrupts a long step (waiting for Prometheus,
    say) at once. Only once: the clean-up that follows is not interrupted.
    """
    first = signal.getsignal(signal.SIGINT)

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and starting.is_set():
            starting.clear()
            raise KeyboardInterrupt
        if callable(first):
            first(signum, frame)

    signal.signal(signal.SIGINT, handle)


def _start_thread(stack: contextlib.ExitStack, name: str, target: Callable[[], None]) -> None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    stack.callback(thread.join, 15)


def _exporter_address(overrides: dict[str, Any]) -> tuple[str, str]:
    """(listen address, the address Prometheus scrapes): --listen-address, else a free
    loopback port."""
    listen = str(overrides.get("listen_address") or f"127.0.0.1:{free_port()}")
    host, port = split_host_port(listen)
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising, not binding
        host = "127.0.0.1"
    return listen, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _start_exporter(
    stack: contextlib.ExitStack, overrides: dict[str, Any], monitor_url: str, listen: str
) -> App:
    settings = load_settings(
        {
            **overrides,
            "database_url": monitor_url,
            "database_url_file": None,
            "listen_address": listen,
        }
    )
    app = build_app(settings)
    stack.callback(app.close)
    return app


def _print_banner(
    args: argparse.Namespace,
    app: App,
    monitoring: Monitoring | None,
    owner_url: str,
    why_no_monitoring: str,
) -> None:
    info = psycopg.conninfo.conninfo_to_dict(owner_url)
    lines = [
        "",
        f"governance-exporter demo is running at {args.speed:g}x speed: each hourly charter "
        f"runs every {3600 / args.speed:g} s;",
        f"the runway goes green -> yellow -> red -> empty in {args.drain_minutes:g} min, "
        f"and the account is topped up {args.outage_minutes:g} min later.",
        "",
        f"  exporter      {app.server.url}/metrics",
    ]
    if monitoring is not None:
        lines.append(f"  prometheus    {monitoring.prometheus.url}/alerts")
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
    lines += [
        f"  postgres      psql 'postgresql://postgres:{info['password']}@127.0.0.1:"
        f"{info['port']}/{DEMO_DATABASE}'",
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
    server = stack.enter_context(throwaway_postgres(prefix="postgres-", parent=root))
    _checkpoint(stop)
    owner_url, monitor_url = create_demo_database(server, args.schema, repo)
    driver = DemoDriver(owner_url, options_from(args))
    stack.callback(driver.close)
    driver.seed()
    _checkpoint(stop)
    listen, target = _exporter_address(overrides)
    app = _start_exporter(stack, overrides, monitor_url, listen)
    _start_thread(stack, "http", app.serve_forever)
    stack.callback(app.server.shutdown)
    receiver = WebhookReceiver("127.0.0.1", 0, log_notification).start()
    stack.callback(receiver.close)
    monitoring, why_not = _monitoring(
        stack, args, repo=repo, root=root, exporter_target=target, receiver=receiver
    )
    _checkpoint(stop)
    _start_thread(stack, "demo-driver", lambda: driver.run(stop))
    stack.callback(stop.set)  # stops the driver even when we leave by an exception
    _print_banner(args, app, monitoring, owner_url, why_not)
    return driver


def _run_demo(
    args: argparse.Namespace,
    overrides: dict[str, Any],
    repo: RepoFiles,
    stop: threading.Event,
    starting: threading.Event,
) -> None:
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="govexp-demo-"))
        stack.callback(shutil.rmtree, root, True)
        root.chmod(0o711)  # PostgreSQL may run as another user, in a directory inside
        logger.info("demo state in %s", root)
        try:
            driver = _start(stack, args, overrides=overrides, repo=repo, stop=stop, root=root)
        finally:
            starting.clear()  # from here on, a second Ctrl-C interrupts nothing
        stop.wait()
        logger.info("stopping")
        if driver.failure is not None:  # the driver's thread set `stop`: it has logged why
            raise RuntimeError(f"the demo driver failed: {driver.describe_failure()}")
    logger.info("stopped; removed %s", root)


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    repo = RepoFiles.find()
    configure_logging(overrides.get("log_level", "INFO").upper())
    stop = threading.Event()
    starting = threading.Event()
    starting.set()
    stop_on_signals(stop)
    _abort_on_second_interrupt(stop, starting)
    try:
        _run_demo(args, overrides, repo, stop, starting)
    except PostgresNotFound as exc:
        raise UsageError(str(exc)) from None
    except Interrupted:
        logger.info("interrupted during start-up; stopped")
    except KeyboardInterrupt:
        logger.info("interrupted again during start-up; stopped")
        return 130
    except (RuntimeError, OSError, psycopg.Error) as exc:
        logger.error("demo failed: %s", exc)
        return 1
    return 0
