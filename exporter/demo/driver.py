"""The demo's Cogni node: governance activity whose credits drain, and a pager that prints.

``DemoDriver`` writes, through an owner or superuser connection, what the source
system writes: the four charters' runs, in turn, one every 15 minutes of demo
time; a charge receipt for each successful run, which lowers the balance; and,
once the balance is gone, runs rejected with ``insufficient_credits`` that charge
nothing, as on 2026-02-15. After ``outage_seconds`` of that it tops the account
up, as an operator would, and the story starts again.

Timing. Demo time runs ``speed`` times faster than real time (60: a demo hour per
real minute), so the runs come often; the rows carry real timestamps, because the
exporter reads the real clock and a real 24 h window. The account starts (and is
topped up) at 1.5 times the last 24 h of spend, a runway of 36 h, and each run costs
1/N of that balance, N being the runs in ``drain_seconds``: a cost spike against
the seeded day of history. Having spent x of balance B = 1.5 S, the runway is
24 h * (B - x) / (S + x): yellow (≤ 24 h) after 1/6 of the drain, red (< 6 h)
after 2/3, empty at the end.

``WebhookReceiver`` is an Alertmanager webhook target (``POST /pager``,
``POST /ticket``) that hands each notification to a callback; the demo logs them.

Run alone (the compose file's ``demo-driver`` service)::

    python -m exporter.demo.driver --database-url-file /run/secrets/driver_database_url
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from exporter.cache import Clock, utc_now
from exporter.demo import scenario
from exporter.model import burn_rate, runway_seconds
from exporter.policy import Health, credit_health
from exporter.settings import split_host_port
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03
from exporter.startup import configure_logging, stop_on_signals

logger = logging.getLogger(__name__)

CHARTERS = tuple(scenario.CHARTER_CRONS)  # in cron order: :00, :15, :30, :45
DEMO_SECONDS_BETWEEN_RUNS = 15 * 60  # four hourly charters, a quarter of an hour apart
WINDOW_SECONDS = 86400  # the exporter's default window: runway uses the last 24 h
MAX_CATCH_UP_RUNS = 8  # after a pause (a laptop asleep), write at most this many late runs
FALLBACK_BALANCE = 500_000_000  # a top-up when nothing was spent to size it by

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class DriverOptions:
    """How fast the story goes; see the module doc for the arithmetic."""

    speed: float = 60.0
    drain_seconds: float = 240.0
    outage_seconds: float = 120.0
    start_runway_hours: float = 36.0
    history_hours: int = 24
    history_cost: int = 1_000_000
    failure_rate: float = 0.03
    seed: int | None = None

    @property
    def run_gap(self) -> timedelta:
        return timedelta(seconds=DEMO_SECONDS_BETWEEN_RUNS / self.speed)

    @property
    def runs_per_drain(self) -> float:
        return max(1.0, self.drain_seconds / self.run_gap.total_seconds())


@dataclass(frozen=True)
class RunEvent:
    """One run the driver wrote."""

    at: datetime
    charter: str
    status: str
    reason: str | None
    charged: int
    balance: int


@dataclass(frozen=True)
class CreditState:
    balance: int
    spent: int

    @property
    def runway_seconds(self) -> float:
        return runway_seconds(self.balance, burn_rate(self.spent, WINDOW_SECONDS))

    @property
    def health(self) -> Health:
        return credit_health(self.balance, self.runway_seconds)

    def describe(self) -> str:
        runway = self.runway_seconds
        hours = "unbounded" if runway == float("inf") else f"{runway / 3600:.1f} h"
        return (
            f"balance {self.balance / 1e6:,.1f}M credits, spent {self.spent / 1e6:,.1f}M "
            f"in 24 h, runway {hours}: {self.health.value}"
        )


def detect_schema(conn: Conn) -> str:
    """2026-03 when ``graph_runs`` exists, else 2026-02."""
    row = conn.execute("SELECT to_regclass('graph_runs') IS NOT NULL").fetchone()
    return SCHEMA_2026_03 if row is not None and row[0] else SCHEMA_2026_02


class DemoDriver:
    """Writes the demo's activity; ``step()`` writes what is due by ``clock()``."""

    def __init__(self, conninfo: str, options: DriverOptions, *, clock: Clock = utc_now) -> None:
        self._conninfo = conninfo
        self.options = options
        self._clock = clock
        self._rng = random.Random(options.seed)  # noqa: S311 - demo data, not secrets
        self._conn: Conn | None = None
        self._schema = SCHEMA_2026_03
        self._tenant: scenario.Tenant | None = None
        self._schedules: dict[str, str] = {}
        self._turn = 0
        self._next_due = clock()
        self._cost = options.history_cost
        self._empty_since: datetime | None = None
        self.failure: Exception | None = None  # what ended run(), if not ``stop``

    # --- connection ---------------------------------------------------------------

    @property
    def conn(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            # All five tables FORCE row-level security: an owner that is not a
            # superuser sees and writes the system account's rows only as its principal.
            self._conn.execute(
                "SELECT set_config('app.current_user_id', %s, false)", (scenario.SYSTEM_USER_ID,)
            )
            self._schema = detect_schema(self._conn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- set-up -------------------------------------------------------------------

    def seed(self) -> None:
        """Create the node with a day of history, or pick up the one already there."""
        now = self._clock()
        conn = self.conn
        with conn.transaction():
            if not self._load_tenant():
                tenant, schedules = scenario.seed_governance(
                    conn,
                    self._schema,
                    now,
                    balance_credits=0,
                    credits_per_run=self.options.history_cost,
                    hours=self.options.history_hours,
                )
                self._tenant, self._schedules = tenant, schedules
                logger.info(
                    "seeded a Cogni node (schema %s): 4 hourly charters, %d h of history",
                    self._schema,
                    self.options.history_hours,
                )
                self._top_up(now)
        state = self.credit_state(now)
        if state.balance > 0:
            self._cost = self._cost_for(state.balance)
        else:
            self._empty_since = now
        self._next_due = now + self.options.run_gap
        logger.info("demo node: %s", state.describe())

    def _load_tenant(self) -> bool:
        row = self.conn.execute(
            "SELECT a.owner_user_id, a.id, g.id::text, k.id::text FROM billing_accounts a"
            " JOIN execution_grants g ON g.billing_account_id = a.id"
            " JOIN virtual_keys k ON k.billing_account_id = a.id"
            " WHERE a.slug = %s ORDER BY g.created_at, k.created_at LIMIT 1",
            (scenario.SYSTEM_SLUG,),
        ).fetchone()
        if row is None:
            return False
        self._tenant = scenario.Tenant(*row)
        prefix = "governance:"
        rows = self.conn.execute(
            "SELECT temporal_schedule_id, id::text FROM schedules"
            " WHERE execution_grant_id = %s AND temporal_schedule_id LIKE 'governance:%%'",
            (self._tenant.grant_id,),
        ).fetchall()
        self._schedules = {str(tsid).removeprefix(prefix): str(sid) for tsid, sid in rows}
        logger.info("picked up the existing node with charters %s", ", ".join(self._schedules))
        return True

    @property
    def tenant(self) -> scenario.Tenant:
        if self._tenant is None:
            raise RuntimeError("seed() first")
        return self._tenant

    # --- credits ------------------------------------------------------------------

    def credit_state(self, now: datetime) -> CreditState:
        row = self.conn.execute(
            "SELECT a.balance_credits,"
            " (SELECT coalesce(sum(c.charged_credits), 0) FROM charge_receipts c"
            "   WHERE c.billing_account_id = a.id AND c.created_at > %s)"
            " FROM billing_accounts a WHERE a.id = %s",
            (now - timedelta(seconds=WINDOW_SECONDS), self.tenant.account_id),
        ).fetchone()
        if row is None:
            raise RuntimeError("the demo account has gone")
        return CreditState(int(row[0]), int(row[1]))

    def _cost_for(self, balance: int) -> int:
        return max(1, round(balance / self.options.runs_per_drain))

    def _top_up(self, now: datetime) -> None:
        spent = self.credit_state(now).spent
        balance = round(spent * self.options.start_runway_hours / 24) or FALLBACK_BALANCE
        scenario.set_balance(self.conn, self.tenant, balance)
        self._cost = self._cost_for(balance)
        self._empty_since = None
        logger.info(
            "topped the account up to %.1fM credits (%.0f h of runway); each run now costs "
            "about %.1fM credits, so it drains in about %.0f s",
            balance / 1e6,
            self.options.start_runway_hours,
            self._cost / 1e6,
            self.options.drain_seconds,
        )

    # --- runs ---------------------------------------------------------------------

    def step(self) -> list[RunEvent]:
        """Write the runs due by now (and top up after an outage); return them."""
        now = self._clock()
        if self._empty_since is not None and now - self._empty_since >= timedelta(
            seconds=self.options.outage_seconds
        ):
            with self.conn.transaction():
                self._top_up(now)
        events: list[RunEvent] = []
        while self._next_due <= now and len(events) < MAX_CATCH_UP_RUNS:
            with self.conn.transaction():
                events.append(self._write_run(self._next_due, now))
            self._next_due += self.options.run_gap
        if self._next_due <= now:
            self._next_due = now + self.options.run_gap
        return events

    def _next_charter(self) -> str:
        available = [c for c in CHARTERS if c in self._schedules] or list(self._schedules)
        if not available:
            raise RuntimeError("the demo account has no governance schedules")
        charter = available[self._turn % len(available)]
        self._turn += 1
        return charter

    def _write_run(self, slot: datetime, now: datetime) -> RunEvent:
        charter = self._next_charter()
        schedule_id = self._schedules[charter]
        balance = self.credit_state(now).balance
        if balance <= 0:
            self._fail(schedule_id, slot, now, "insufficient_credits")
            if self._empty_since is None:
                self._empty_since = now
            return RunEvent(now, charter, "error", "insufficient_credits", 0, balance)
        if self._rng.random() < self.options.failure_rate:
            self._fail(schedule_id, slot, now, "timeout")
            return RunEvent(now, charter, "error", "timeout", 0, balance)
        cost = max(1, round(self._cost * self._rng.uniform(0.85, 1.15)))
        scenario.add_run(self.conn, self._schema, schedule_id, slot, "success", completed_at=now)
        scenario.add_charge(self.conn, self.tenant, cost, now)
        if balance - cost <= 0:
            self._empty_since = now
        return RunEvent(now, charter, "success", None, cost, balance - cost)

    def _fail(self, schedule_id: str, slot: datetime, now: datetime, code: str) -> None:
        scenario.add_run(
            self.conn,
            self._schema,
            schedule_id,
            slot,
            "error",
            error_message=code,
            error_code=code,
            completed_at=now,
        )

    # --- the loop -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set, logging the runway's colour as it changes.

        A lost connection is retried; any other error is logged, kept in
        ``failure`` and sets ``stop``, so that whoever waits on it stops too
        instead of running on with no activity.
        """
        tick = min(1.0, self.options.run_gap.total_seconds() / 4)
        health: Health | None = None
        self._next_due = self._clock() + self.options.run_gap  # the story starts now
        while not stop.wait(tick):
            try:
                events = self.step()
                if events:
                    health = self._report(events, health)
            except psycopg.OperationalError as exc:
                logger.warning("database unavailable (%s); retrying", exc)
                self.close()
                stop.wait(2)
            except Exception as exc:
                logger.exception("the demo driver failed; stopping")
                self.failure = exc
                stop.set()
                return

    def describe_failure(self) -> str:
        """The first line of what ended ``run()`` (psycopg adds the query's context)."""
        if self.failure is None:
            return ""
        lines = str(self.failure).strip().splitlines()
        return lines[0] if lines else type(self.failure).__name__

    def _report(self, events: Sequence[RunEvent], health: Health | None) -> Health:
        for event in events:
            if event.status == "success":
                logger.info(
                    "run of %s: success, charged %.1fM credits, balance %.1fM",
                    event.charter,
                    event.charged / 1e6,
                    event.balance / 1e6,
                )
            else:
                logger.info("run of %s: %s (%s)", event.charter, event.status, event.reason)
        state = self.credit_state(self._clock())
        if state.health != health:
            logger.info("runway is now %s", state.describe())
            if state.balance <= 0:
                logger.info(
                    "the balance is gone: every run is now rejected with insufficient_credits "
                    "(the 2026-02-15 outage); the demo tops it up in %.0f s",
                    self.options.outage_seconds,
                )
        return state.health


# --- Alertmanager's webhook -----------------------------------------------------------

Notification = dict[str, Any]
NotificationHandler = Callable[[str, Notification], None]


def _handler_class(on_notification: NotificationHandler) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, b"not JSON\n")
                return
            on_notification(self.path.strip("/"), payload)
            self._answer(HTTPStatus.OK, b"ok\n")

        def do_GET(self) -> None:
            self._answer(HTTPStatus.OK, b"ok\n")

        def _answer(self, status: HTTPStatus, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("webhook: %s", format % args)

    return Handler


class WebhookReceiver:
    """An Alertmanager webhook target: ``POST /<receiver>`` calls ``on_notification``."""

    def __init__(self, host: str, port: int, on_notification: NotificationHandler) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler_class(on_notification))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def url_for(self, receiver: str) -> str:
        return f"{self.url}/{receiver}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


def describe_notification(receiver: str, payload: Notification) -> list[str]:
    """One line per alert: ``PAGE firing GovernanceCreditRunwayLow [critical] account=…``."""
    kind = {"pager": "PAGE", "ticket": "TICKET"}.get(receiver, receiver.upper() or "WEBHOOK")
    lines = []
    for alert in payload.get("alerts", []):
        labels = dict(alert.get("labels", {}))
        name = labels.pop("alertname", "?")
        severity = labels.pop("severity", "?")
        where = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        summary = alert.get("annotations", {}).get("summary", "")
        lines.append(f"{kind} {alert.get('status', '?')} {name} [{severity}] {where} - {summary}")
    return lines


def log_notification(receiver: str, payload: Notification) -> None:
    for line in describe_notification(receiver, payload):
        logger.warning("%s", line)


# --- command line (the compose file's demo-driver service) -----------------------------


def add_driver_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DriverOptions()
    group = parser.add_argument_group("demo activity")
    group.add_argument(
        "--speed",
        type=_positive_float,
        default=defaults.speed,
        help="demo seconds per real second: 60 (the default) runs each hourly charter "
        "once a real minute",
    )
    group.add_argument(
        "--drain-minutes",
        type=_positive_float,
        default=defaults.drain_seconds / 60,
        help="real minutes from a full account (36 h of runway, green) to 0 (default: %(default)s)",
    )
    group.add_argument(
        "--outage-minutes",
        type=_positive_float,
        default=defaults.outage_seconds / 60,
        help="real minutes of runs rejected for insufficient credits before the demo "
        "tops the account up (default: %(default)s)",
    )
    group.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable demo")


def options_from(args: argparse.Namespace) -> DriverOptions:
    return DriverOptions(
        speed=args.speed,
        drain_seconds=args.drain_minutes * 60,
        outage_seconds=args.outage_minutes * 60,
        seed=args.seed,
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.demo.driver",
        description="Write a demo Cogni node's governance activity (runs, charges, a "
        "balance that drains) into a database that has the Cogni schema, and optionally "
        "log the notifications Alertmanager sends to a webhook.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("GOVERNANCE_DEMO_DATABASE_URL"),
        help="libpq URL of an owner or superuser of the Cogni database "
        "[env GOVERNANCE_DEMO_DATABASE_URL]",
    )
    parser.add_argument(
        "--database-url-file",
        type=Path,
        default=os.environ.get("GOVERNANCE_DEMO_DATABASE_URL_FILE"),
        help="file holding that URL [env GOVERNANCE_DEMO_DATABASE_URL_FILE]",
    )
    parser.add_argument(
        "--webhook-listen",
        metavar="HOST:PORT",
        help="also serve an Alertmanager webhook here (POST /pager, /ticket) and log "
        "every notification",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    add_driver_arguments(parser)
    return parser


def _conninfo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if args.database_url_file is not None:
        try:
            return str(Path(args.database_url_file).read_text().strip())
        except OSError as exc:
            parser.error(f"--database-url-file: cannot read it ({exc.strerror})")
    if not args.database_url:
        parser.error("--database-url or --database-url-file is required")
    return str(args.database_url)


def _seed_when_ready(driver: DemoDriver, stop: threading.Event, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        try:
            driver.seed()
            return True
        except psycopg.Error as exc:
            if time.monotonic() > deadline:
                raise
            logger.info("waiting for the database (%s)", str(exc).strip().splitlines()[0])
            driver.close()
            stop.wait(2)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    conninfo = _conninfo(parser, args)
    configure_logging(args.log_level)
    stop = threading.Event()
    stop_on_signals(stop)
    receiver = None
    if args.webhook_listen:
        host, port = split_host_port(args.webhook_listen)
        receiver = WebhookReceiver(host, port, log_notification).start()
        logger.info("Alertmanager webhook: %s/pager and /ticket", receiver.url)
    driver = DemoDriver(conninfo, options_from(args))
    try:
        if _seed_when_ready(driver, stop):
            driver.run(stop)
    finally:
        driver.close()
        if receiver is not None:
            receiver.close()
    if driver.failure is not None:
        logger.error("stopped: the demo driver failed: %s", driver.describe_failure())
        return 1
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
