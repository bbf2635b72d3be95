"""The demo's Cogni node: its governance activity, an outage, a top-up, and a pager that prints.

``DemoDriver`` writes, through an owner or superuser connection, what the source
system writes, for one of the two node shapes of ``exporter.demo.node``: each
schedule's runs at the fire times of its row's cron, a charge receipt for each
successful run (through its ``run_id``), which lowers the balance, PR reviews as
runs without a schedule, and, where the schema has them, the ledger's
``ingestion_cursors``, its epochs moved on by each collect and a webhook receipt for
each GitHub event (``exporter.demo.ledger_activity``).

Timing. Demo time runs ``speed`` times faster than real time (60: a demo hour per
real minute). The rows carry real timestamps and the crons are real-time crons
(``exporter.demo.node``), never in the future; the exporter's window is one demo
day (``node.window_seconds``), and the node starts with a demo day of history.

The story (``exporter.demo.story``) plays once, then the node stays healthy:

- ``current`` (today's node): healthy for ``healthy_seconds``; then the provider
  unfunded for ``outage_seconds``: the heartbeat and the PR reviews fail with
  ``provider_unavailable``, while the balance looks fine; then the balance under
  one run's cost (1,000,000 credits, under the preflight's 4,000,000) for
  ``outage_seconds``: every run is rejected with ``insufficient_credits`` though
  the balance is positive; then the account is topped up; ``healthy_seconds``
  later the webhook plane stops for ``webhook_seconds`` (the 2026-06-11 incident:
  no receipts, no PR reviews; the collect goes on), then resumes.
- ``2026-02`` (the 2026-02-15 outage): the runway drains green → yellow → red →
  empty over ``drain_seconds`` (a cost spike: each run is charged what takes the
  runway, as the exporter computes it, down a planned path from 36 h, yellow
  after 1/6 of the drain, red after 2/3, to 0); runs are then rejected with
  ``insufficient_credits`` and charge nothing; ``outage_seconds`` later the
  account is topped up to 36 h of runway.

After the top-up the failures leave the exporter's window one demo day later, and
every alert resolves; the webhook plane's silence ends with the next receipt.

With ``--webhook-listen`` it also serves Alertmanager's webhook and logs each alert
once as it fires and once as it resolves (``exporter.demo.pager``).

Run alone (the compose file's ``demo-driver`` service)::

    python -m exporter.demo.driver --database-url-file /run/secrets/driver_database_url
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from exporter.collection import Clock, utc_now
from exporter.demo import ledger_activity, node, scenario
from exporter.demo.node import (
    CHARTER,
    LEDGER,
    NODE_CURRENT,
    NODE_FEBRUARY,
    NODES,
    RECEIPT,
    REVIEW,
    Work,
)
from exporter.demo.pager import NotificationLog, WebhookReceiver
from exporter.demo.story import (
    LOW_BALANCE,
    MIN_RUN_COST,
    CreditState,
    DriverOptions,
    Phase,
    RunEvent,
    add_driver_arguments,
    announcement,
    next_phase,
    options_from,
)
from exporter.policy import Health
from exporter.settings import split_host_port
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_08, SCHEMA_2026_10
from exporter.startup import configure_logging, stop_on_signals

logger = logging.getLogger(__name__)

MAX_CATCH_UP_RUNS = 8  # after a pause (a laptop asleep), write at most this many late runs each
LEDGER_STREAMS = ("pull_requests", "reviews", "issues")
FALLBACK_BALANCE = 500_000_000  # a top-up when nothing was spent to size it by

Conn = psycopg.Connection[Any]
LEDGER_SCHEMAS = (SCHEMA_2026_10, SCHEMA_2026_08)  # those with ingestion_cursors
LEDGER_HISTORY_COLLECTS = 4  # collects of history: epochs finalized, in review, open
WEBHOOK_WORK = (RECEIPT, REVIEW)  # what stops with the webhook plane

__all__ = [
    "CreditState",
    "DemoDriver",
    "DriverOptions",
    "Phase",
    "RunEvent",
    "build_parser",
    "main",
    "options_from",
]


def detect_schema(conn: Conn) -> str:
    """2026-08 (the ledger's) when ``epochs`` exists, 2026-10 with ``ingestion_cursors``,
    2026-03 with ``graph_runs``, else 2026-02."""
    row = conn.execute(
        "SELECT to_regclass('public.epochs') IS NOT NULL,"
        " to_regclass('ingestion_cursors') IS NOT NULL, to_regclass('graph_runs') IS NOT NULL"
    ).fetchone()
    if row is None:
        return SCHEMA_2026_02
    found = [SCHEMA_2026_08, SCHEMA_2026_10, SCHEMA_2026_03]
    return next((schema for schema, has in zip(found, row, strict=True) if has), SCHEMA_2026_02)


class DemoDriver:
    """Writes the demo's activity; ``step()`` writes what is due by ``clock()``."""

    def __init__(self, conninfo: str, options: DriverOptions, *, clock: Clock = utc_now) -> None:
        if options.node not in NODES:
            raise ValueError(f"unknown demo node {options.node!r}")
        self._conninfo = conninfo
        self.options = options
        self.works = options.works()
        self._clock = clock
        self._rng = random.Random(options.seed)  # noqa: S311 - demo data, not secrets
        self._conn: Conn | None = None
        self._schema = SCHEMA_2026_03
        self._tenant: scenario.Tenant | None = None
        self._schedules: dict[str, str] = {}  # charter -> schedule id
        self._last_fire: dict[str, datetime] = {}
        self.phase = Phase.HEALTHY
        self._phase_since = clock()
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
        """Create the node with a demo day of history, or pick up the one already there."""
        now = self._clock()
        conn = self.conn
        if self.options.node == NODE_CURRENT and self._schema == SCHEMA_2026_02:
            raise RuntimeError("today's node needs schema 2026-03 or later (graph_runs)")
        # Receipts only where the ledger's tables are (schema 2026-08).
        self.works = tuple(
            w for w in self.works if w.kind != RECEIPT or self._schema == SCHEMA_2026_08
        )
        with conn.transaction():
            if not self._load_tenant():
                self._create_node(now)
                self._top_up(now, planned=True)
        for work in self.works:
            self._last_fire[work.name] = max(self._last_fire.get(work.name, now), now)
        self.start_story(now)
        logger.info("demo node: %s", self.credit_state(now).describe())

    def _create_node(self, now: datetime) -> None:
        conn = self.conn
        self._tenant = scenario.create_tenant(conn, balance_credits=0)
        for work in self.works:
            if work.kind == CHARTER:
                self._schedules[work.name] = scenario.add_schedule(
                    conn, self.tenant, work.name, cron=work.cron, next_run_at=self._next(work, now)
                )
            elif work.kind == LEDGER:
                self._schedules[work.name] = scenario.add_ledger_schedule(
                    conn, self.tenant, cron=work.cron, next_run_at=self._next(work, now)
                )
        if self.options.node == NODE_CURRENT:
            for charter, cron in scenario.CHARTER_CRONS.items():  # retired on 2026-02-19
                old = scenario.add_schedule(
                    conn, self.tenant, charter, cron=cron, next_run_at=now - timedelta(days=300)
                )
                scenario.prune_schedule(conn, old)
        window = timedelta(seconds=self.options.window_seconds)
        for work in self.works:
            # The ledger's history: enough collects for epochs finalized, in review, open.
            span = max(
                window, LEDGER_HISTORY_COLLECTS * work.period if work.kind == LEDGER else window
            )
            for slot in node.fires(work.cron, now - span, now):
                self._write(work, slot, now, outcome=("success", None), cost=work.cost)
            self._last_fire[work.name] = now
        logger.info(
            "seeded a Cogni node (%s shape, schema %s): %s; one demo day (%d s) of history",
            self.options.node,
            self._schema,
            ", ".join(f"{w.name} {w.demo_every}" for w in self.works),
            self.options.window_seconds,
        )

    def _next(self, work: Work, now: datetime) -> datetime | None:
        return next(node.fires(work.cron, now, now + 2 * work.period), None)

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
            "SELECT temporal_schedule_id, id::text, cron FROM schedules"
            " WHERE execution_grant_id = %s AND temporal_schedule_id LIKE 'governance:%%'"
            " AND enabled",
            (self._tenant.grant_id,),
        ).fetchall()
        found = {str(tsid).removeprefix(prefix): (str(sid), str(cron)) for tsid, sid, cron in rows}
        self._schedules = {name: sid for name, (sid, _) in found.items()}
        # Fire each schedule by its row's cron; keep the reviews if this is today's node.
        self.works = tuple(
            Work(w.name, w.kind, found[w.name][1], w.cost, w.demo_every, w.declared)
            if w.name in found
            else w
            for w in self.works
            if w.name in found or w.kind in WEBHOOK_WORK
        )
        # Resume after the newest run each schedule has (a restart must not write a slot twice).
        newest = self.conn.execute(
            sql.SQL("SELECT schedule_id::text, max(scheduled_for) FROM {} GROUP BY 1").format(
                sql.Identifier(scenario.runs_table(self._schema))
            )
        ).fetchall()
        names = {sid: name for name, sid in self._schedules.items()}
        for schedule_id, slot in newest:
            if schedule_id in names and slot is not None:
                self._last_fire[names[schedule_id]] = slot
        logger.info("picked up the existing node with charters %s", ", ".join(self._schedules))
        return True

    @property
    def tenant(self) -> scenario.Tenant:
        if self._tenant is None:
            raise RuntimeError("seed() first")
        return self._tenant

    # --- credits ------------------------------------------------------------------

    def credit_state(self, now: datetime) -> CreditState:
        window = self.options.window_seconds
        row = self.conn.execute(
            "SELECT a.balance_credits,"
            " (SELECT coalesce(sum(c.charged_credits), 0) FROM charge_receipts c"
            "   WHERE c.billing_account_id = a.id AND c.created_at > %s)"
            " FROM billing_accounts a WHERE a.id = %s",
            (now - timedelta(seconds=window), self.tenant.account_id),
        ).fetchone()
        if row is None:
            raise RuntimeError("the demo account has gone")
        return CreditState(int(row[0]), int(row[1]), window)

    def _top_up(self, now: datetime, *, planned: bool = False) -> None:
        """A balance of ``start_runway_hours`` at the window's spend (``planned``: at
        what the node spends when healthy)."""
        window = self.options.window_seconds
        spent = (
            node.spend_per_window(self.works, window)
            if planned
            else max(self.credit_state(now).spent, node.spend_per_window(self.works, window))
        )
        balance = round(spent * self.options.start_runway_hours * 3600 / window)
        scenario.set_balance(self.conn, self.tenant, balance or FALLBACK_BALANCE)
        logger.info(
            "the account holds %.1fM credits: %.0f h of runway at the window's spend",
            balance / 1e6,
            self.options.start_runway_hours,
        )

    # --- the story ----------------------------------------------------------------

    def start_story(self, now: datetime) -> None:
        """The story starts over at ``now``."""
        self._enter(Phase.HEALTHY if self.options.node == NODE_CURRENT else Phase.DRAINING, now)
        if self.options.node == NODE_FEBRUARY and self.credit_state(now).balance <= 0:
            self._enter(Phase.EMPTY, now)

    def _enter(self, phase: Phase, now: datetime) -> None:
        self.phase, self._phase_since = phase, now

    def _advance_story(self, now: datetime) -> None:
        """Move to the next phase when this one is over, doing what it starts with."""
        elapsed = (now - self._phase_since).total_seconds()
        following = next_phase(self.phase, elapsed, self.options)
        if following is None:
            return
        if following == Phase.LOW_BALANCE:
            scenario.set_balance(self.conn, self.tenant, LOW_BALANCE)
        elif following == Phase.RECOVERED:
            self._top_up(now)
        self._enter(following, now)
        logger.info("%s", announcement(following, self.options, now))

    def _outcome(self, work: Work, balance: int) -> tuple[str, str | None]:
        if work.kind in (LEDGER, RECEIPT):
            return "success", None
        if self.phase == Phase.PROVIDER_DOWN:
            return "error", "provider_unavailable"
        refused = balance <= 0 if self.options.node == NODE_FEBRUARY else balance < MIN_RUN_COST
        if refused:
            return "error", "insufficient_credits"
        if self._rng.random() < self.options.failure_rate:
            return "error", "timeout"
        return "success", None

    def _cost(self, work: Work, slot: datetime, state: CreditState) -> int:
        """A healthy run's charge; while draining, what takes the runway to its planned
        value: runway r after a charge x is (B - x) W / (S + x), so x = (B W - r S) / (W + r)."""
        if self.phase != Phase.DRAINING:
            return max(1, round(work.cost * self._rng.uniform(0.9, 1.1)))
        done = min(1.0, (slot - self._phase_since).total_seconds() / self.options.drain_seconds)
        target = self.options.start_runway_hours * 3600 * (1 - done) / (1 + 1.5 * done)
        window = state.window_seconds
        charge = (state.balance * window - target * state.spent) / (window + target)
        return max(1, min(state.balance, round(charge)))

    # --- runs ---------------------------------------------------------------------

    def step(self) -> list[RunEvent]:
        """Write what is due by now (moving the story on first); return it."""
        now = self._clock()
        with self.conn.transaction():
            self._advance_story(now)
        due = sorted(
            (slot, index)
            for index, work in enumerate(self.works)
            for slot in node.fires(
                work.cron, self._last_fire.get(work.name, now), now, MAX_CATCH_UP_RUNS
            )
        )
        events = []
        for slot, index in due:
            work = self.works[index]
            if self.phase != Phase.WEBHOOK_DOWN or work.kind not in WEBHOOK_WORK:
                with self.conn.transaction():
                    events.append(self._run(work, slot, now))
            self._last_fire[work.name] = slot
        for work in self.works:  # after a long pause, skip what is left
            self._last_fire[work.name] = max(self._last_fire[work.name], now)
        return events

    def _run(self, work: Work, slot: datetime, now: datetime) -> RunEvent:
        state = self.credit_state(now)
        status, reason = self._outcome(work, state.balance)
        cost = self._cost(work, slot, state) if status == "success" and work.cost else 0
        self._write(work, slot, now, outcome=(status, reason), cost=cost)
        balance = state.balance - cost
        if self.phase == Phase.DRAINING and balance <= 0:
            self._enter(Phase.EMPTY, now)
            logger.info(
                "OUTAGE: the balance is gone: every run is now rejected with insufficient_credits "
                "(the 2026-02-15 outage); the demo tops it up in %.0f s",
                self.options.outage_seconds,
            )
        return RunEvent(slot, work.name, status, reason, cost, balance)

    def _write(
        self,
        work: Work,
        slot: datetime,
        now: datetime,
        *,
        outcome: tuple[str, str | None],
        cost: int,
    ) -> None:
        """The rows of one run that started at ``slot``; nothing is dated after ``now``."""
        status, reason = outcome
        done = min(slot + (work.duration if status == "success" else work.duration / 20), now)
        conn = self.conn
        if work.kind == LEDGER:
            self._collect(work, done)
            return
        if work.kind == RECEIPT:
            ledger_activity.receive(conn, slot)
            return
        if work.kind == REVIEW:
            run_id = scenario.add_unscheduled_run(
                conn, self.tenant, slot, status, error_code=reason, completed_at=done
            )
        else:
            run_id = scenario.add_run(
                conn,
                self._schema,
                self._schedules[work.name],
                slot,
                status,
                error_message=reason,
                error_code=reason,
                completed_at=done,
            )
        if cost:
            scenario.add_charge(conn, self.tenant, cost, done, run_id=run_id)

    def _collect(self, work: Work, at: datetime) -> None:
        """What a finished collect leaves: cursors where the schema has them, the
        epochs moved on where it has the ledger's."""
        if self._schema in LEDGER_SCHEMAS:
            for stream in LEDGER_STREAMS:
                scenario.add_ingestion_cursor(self.conn, at, stream=stream)
        if self._schema == SCHEMA_2026_08:
            moved = ledger_activity.collect(self.conn, at, work.period)
            logger.debug("the collect at %s: %s", at.strftime("%H:%M:%S"), moved)

    # --- the loop -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set, logging the runway's colour as it changes.

        A lost connection is retried; any other error is logged, kept in
        ``failure`` and sets ``stop``, so that whoever waits on it stops too
        instead of running on with no activity.
        """
        shortest = min(w.period.total_seconds() for w in self.works)
        tick = min(1.0, shortest / 4)
        health: Health | None = None
        started = False
        while not stop.wait(tick):
            try:
                if not started:  # the story starts now, not when the node was seeded
                    self.start_story(self._clock())
                    started = True
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
            if event.charter == node.RECEIPT_NAME:  # four a demo hour: too many to log
                logger.debug("webhook receipt at %s", event.at.strftime("%H:%M:%S"))
            elif event.status == "success" and event.charged:
                logger.info(
                    "run of %s: success, charged %.1fM credits, balance %.1fM",
                    event.charter,
                    event.charged / 1e6,
                    event.balance / 1e6,
                )
            elif event.status == "success":
                logger.info("run of %s: success", event.charter)
            else:
                logger.info("run of %s: %s (%s)", event.charter, event.status, event.reason)
        state = self.credit_state(self._clock())
        if state.health != health:
            logger.info("credits are now %s", state.describe())
        return state.health


# --- command line (the compose file's demo-driver service) -----------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.demo.driver",
        description="Write a demo Cogni node's governance activity (runs, charges, "
        "ledger collections, an outage and a top-up) into a database that has the Cogni "
        "schema, and optionally log the notifications Alertmanager sends to a webhook. "
        "Give the exporter --window-seconds of one demo day (86400 / --speed) and, for "
        "the current node, the repo-spec it declares (--print-repo-spec).",
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
        "each alert's firing and resolution once",
    )
    parser.add_argument(
        "--print-repo-spec",
        action="store_true",
        help="print the current node's .cogni/repo-spec.yaml at this --speed and exit",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_repo_spec:
        print(node.repo_spec_text(args.speed), end="")
        return 0
    conninfo = _conninfo(parser, args)
    configure_logging(args.log_level)
    stop = threading.Event()
    stop_on_signals(stop)
    receiver = None
    if args.webhook_listen:
        host, port = split_host_port(args.webhook_listen)
        receiver = WebhookReceiver(host, port, NotificationLog()).start()
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
