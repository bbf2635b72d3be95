"""Writes Cogni governance data into a database: for tests, the demo and benchmarks.

It writes through an owner or superuser connection (row-level security does
not apply to it) into either schema version, using the real ids and the four
charters of the source system.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_08, SCHEMA_2026_10

SYSTEM_ACCOUNT_ID = "00000000-0000-4000-b000-000000000000"
SYSTEM_USER_ID = "00000000-0000-4000-a000-000000000001"
SYSTEM_SLUG = "cogni_system"

CHARTER_CRONS = {
    "govern": "0 * * * *",
    "community": "15 * * * *",
    "engineering": "30 * * * *",
    "sustainability": "45 * * * *",
}
SCHEMAS = (SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_10, SCHEMA_2026_08)
LEDGER_GRAPH_ID = "ledger:ingest"
DEFAULT_SCOPE_ID = "cdea48f9-d223-5b5c-a1a3-9ffdd42c3f83"

Conn = psycopg.Connection[Any]


def schema_sql(version: str) -> str:
    if version not in SCHEMAS:
        raise ValueError(f"unknown schema version {version!r}")
    return (resources.files("exporter") / "reference" / f"schema-{version}.sql").read_text()


def runs_table(version: str) -> str:
    return "schedule_runs" if version == SCHEMA_2026_02 else "graph_runs"


def load_schema(conn: Conn, version: str) -> None:
    conn.execute(schema_sql(version).encode())  # bytes: run as one multi-statement script
    # A pg_dump (schema-2026-08-full.sql) empties the session's search_path and turns
    # row security off for the session: give the connection back as it was.
    conn.execute("RESET search_path; RESET row_security; RESET client_min_messages")


@dataclass(frozen=True)
class Tenant:
    user_id: str
    account_id: str
    grant_id: str
    virtual_key_id: str


def create_tenant(
    conn: Conn,
    *,
    user_id: str = SYSTEM_USER_ID,
    account_id: str = SYSTEM_ACCOUNT_ID,
    slug: str | None = SYSTEM_SLUG,
    balance_credits: int = 0,
    system: bool = True,
) -> Tenant:
    conn.execute("INSERT INTO users (id) VALUES (%s)", (user_id,))
    conn.execute(
        "INSERT INTO billing_accounts (id, owner_user_id, is_system_tenant, slug, balance_credits)"
        " VALUES (%s, %s, %s, %s, %s)",
        (account_id, user_id, system, slug, balance_credits),
    )
    grant = conn.execute(
        "INSERT INTO execution_grants (user_id, billing_account_id, scopes)"
        " VALUES (%s, %s, ARRAY['graph:execute']) RETURNING id::text",
        (user_id, account_id),
    ).fetchone()
    key = conn.execute(
        "INSERT INTO virtual_keys (billing_account_id, label, is_default)"
        " VALUES (%s, 'default', true) RETURNING id::text",
        (account_id,),
    ).fetchone()
    if grant is None or key is None:  # INSERT ... RETURNING yields its row
        raise RuntimeError("the tenant's grant or virtual key was not created")
    return Tenant(user_id, account_id, grant[0], key[0])


def add_schedule(
    conn: Conn,
    tenant: Tenant,
    charter: str,
    *,
    cron: str | None = None,
    timezone: str = "UTC",
    enabled: bool = True,
    temporal_schedule_id: str | None = "",
    next_run_at: datetime | None = None,
    message: str | None = None,
    graph_id: str = "sandbox:openclaw",
    input_doc: dict[str, Any] | None = None,
) -> str:
    """A governance schedule; ``temporal_schedule_id=""`` means ``governance:<charter>``."""
    tsid = f"governance:{charter}" if temporal_schedule_id == "" else temporal_schedule_id
    doc = input_doc if input_doc is not None else {"message": message or charter.upper()}
    row = conn.execute(
        "INSERT INTO schedules (owner_user_id, execution_grant_id, graph_id, input, cron,"
        " timezone, enabled, next_run_at, temporal_schedule_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id::text",
        (
            tenant.user_id,
            tenant.grant_id,
            graph_id,
            json.dumps(doc if input_doc is not None else {**doc, "model": "demo"}),
            cron or CHARTER_CRONS.get(charter, "0 * * * *"),
            timezone,
            enabled,
            next_run_at,
            tsid,
        ),
    ).fetchone()
    if row is None:  # INSERT ... RETURNING yields its row
        raise RuntimeError(f"schedule {charter!r} was not created")
    return str(row[0])


def add_run(
    conn: Conn,
    version: str,
    schedule_id: str,
    scheduled_for: datetime,
    status: str,
    *,
    error_message: str | None = None,
    error_code: str | None = None,
    completed_at: datetime | None = None,
    run_id: str | None = None,
) -> str:
    """A scheduled run, as the scheduler writes it; returns its run_id."""
    run_id = run_id or f"run-{schedule_id[:8]}-{scheduled_for.isoformat()}"
    columns = [
        "schedule_id",
        "run_id",
        "scheduled_for",
        "started_at",
        "completed_at",
        "status",
        "attempt_count",
        "error_message",
    ]
    values: list[Any] = [
        schedule_id,
        run_id,
        scheduled_for,
        scheduled_for,
        completed_at,
        status,
        1,
        error_message,
    ]
    if version != SCHEMA_2026_02:
        columns += ["error_code", "run_kind", "graph_id", "trigger_source", "trigger_ref"]
        values += [error_code, "system_scheduled", "sandbox:openclaw", "temporal_schedule", None]
    _insert(conn, runs_table(version), columns, values)
    return run_id


def _insert(conn: Conn, table: str, columns: list[str], values: list[Any]) -> None:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    conn.execute(query, values)


def add_unscheduled_run(
    conn: Conn,
    tenant: Tenant,
    started_at: datetime,
    status: str,
    *,
    run_kind: str = "system_webhook",
    trigger_source: str = "webhook:github",
    error_code: str | None = None,
    completed_at: datetime | None = None,
    run_id: str | None = None,
) -> str:
    """A run without a schedule (a PR review), requested by the tenant's owner, as
    graph_runs has held them since 2026-03-18: the error code is also the message."""
    run_id = run_id or f"webhook-{started_at.isoformat()}-{uuid.uuid4().hex[:8]}"
    _insert(
        conn,
        "graph_runs",
        [
            "run_id",
            "started_at",
            "completed_at",
            "status",
            "attempt_count",
            "error_message",
            "error_code",
            "graph_id",
            "run_kind",
            "trigger_source",
            "trigger_ref",
            "requested_by",
        ],
        [
            run_id,
            started_at,
            completed_at or started_at + timedelta(seconds=40),
            status,
            1,
            error_code,
            error_code,
            "langgraph:pr-review",
            run_kind,
            trigger_source,
            "Cogni-DAO/node-template#1",
            tenant.user_id,
        ],
    )
    return run_id


def add_ledger_schedule(
    conn: Conn,
    tenant: Tenant,
    *,
    cron: str = "0 0 * * *",
    scope_id: str = DEFAULT_SCOPE_ID,
    enabled: bool = True,
    next_run_at: datetime | None = None,
) -> str:
    """The row the boot sync writes for LEDGER_INGEST: graph_id ledger:ingest, an
    input without a message."""
    return add_schedule(
        conn,
        tenant,
        "ledger_ingest",
        cron=cron,
        enabled=enabled,
        next_run_at=next_run_at,
        graph_id=LEDGER_GRAPH_ID,
        input_doc={"version": 1, "scopeId": scope_id, "scopeKey": "default"},
    )


def add_ingestion_cursor(
    conn: Conn,
    retrieved_at: datetime,
    *,
    scope_id: str = DEFAULT_SCOPE_ID,
    stream: str = "pull_requests",
    node_id: str = "538b4da2-bd59-4c3a-928a-8a40b6627205",
) -> None:
    """What a finished ledger collection leaves: one cursor per source stream."""
    conn.execute(
        "INSERT INTO ingestion_cursors (node_id, scope_id, source, stream, source_ref,"
        " cursor_value, retrieved_at) VALUES (%s, %s, 'github', %s, 'Cogni-DAO/node-template',"
        " %s, %s) ON CONFLICT (node_id, scope_id, source, stream, source_ref)"
        " DO UPDATE SET retrieved_at = excluded.retrieved_at, cursor_value = excluded.cursor_value",
        (node_id, scope_id, stream, retrieved_at.isoformat(), retrieved_at),
    )


def prune_schedule(conn: Conn, schedule_id: str) -> None:
    """What the boot sync does to a row whose entry left the repo-spec."""
    conn.execute(
        "UPDATE schedules SET enabled = false, next_run_at = NULL WHERE id = %s", (schedule_id,)
    )


def add_charge(
    conn: Conn,
    tenant: Tenant,
    credits: int,
    at: datetime,
    *,
    debit: bool = True,
    run_id: str = "run",
) -> None:
    """A charge receipt; with ``debit`` the balance goes down too, as in the source system."""
    conn.execute(
        "INSERT INTO charge_receipts (billing_account_id, virtual_key_id, run_id, attempt,"
        " charged_credits, provenance, charge_reason, source_system, source_reference,"
        " receipt_kind, created_at)"
        " VALUES (%s, %s, %s, 1, %s, 'response', 'llm_usage', 'litellm',"
        " gen_random_uuid()::text, 'usage', %s)",
        (tenant.account_id, tenant.virtual_key_id, run_id, credits, at),
    )
    if debit:
        conn.execute(
            "UPDATE billing_accounts SET balance_credits = balance_credits - %s WHERE id = %s",
            (credits, tenant.account_id),
        )


def system_tenant(conn: Conn, slug: str = SYSTEM_SLUG) -> Tenant:
    """The ids of an account made by ``create_tenant``, read back from the database."""
    row = conn.execute(
        "SELECT a.owner_user_id, a.id, g.id::text, k.id::text FROM billing_accounts a"
        " JOIN execution_grants g ON g.billing_account_id = a.id"
        " JOIN virtual_keys k ON k.billing_account_id = a.id WHERE a.slug = %s LIMIT 1",
        (slug,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no account {slug!r} with a grant and a virtual key")
    return Tenant(*row)


def set_balance(conn: Conn, tenant: Tenant, credits: int) -> None:
    conn.execute(
        "UPDATE billing_accounts SET balance_credits = %s WHERE id = %s",
        (credits, tenant.account_id),
    )


def hourly_slots(charter: str, now: datetime, hours: int) -> list[datetime]:
    """The charter's fire times in the last ``hours`` hours (its minute past each hour)."""
    minute = int(CHARTER_CRONS[charter].split()[0])
    top = now.replace(minute=minute, second=0, microsecond=0)
    if top > now:
        top -= timedelta(hours=1)
    return [top - timedelta(hours=h) for h in range(hours)]


def seed_governance(
    conn: Conn,
    version: str,
    now: datetime,
    *,
    balance_credits: int = 500_000_000,
    credits_per_run: int = 1_000_000,
    hours: int = 30,
    charters: tuple[str, ...] = tuple(CHARTER_CRONS),
) -> tuple[Tenant, dict[str, str]]:
    """A healthy node: four hourly charters that succeed and spend credits."""
    tenant = create_tenant(conn, balance_credits=balance_credits)
    schedules = {}
    for charter in charters:
        schedule_id = add_schedule(conn, tenant, charter, next_run_at=now - timedelta(days=9))
        schedules[charter] = schedule_id
        for slot in hourly_slots(charter, now, hours):
            run_id = add_run(
                conn,
                version,
                schedule_id,
                slot,
                "success",
                completed_at=slot + timedelta(minutes=3),
            )
            done = slot + timedelta(minutes=3)
            add_charge(conn, tenant, credits_per_run, done, debit=False, run_id=run_id)
    return tenant, schedules


def seed_incident(conn: Conn, version: str, now: datetime, *, failing_hours: int = 6) -> Tenant:
    """The 2026-02-15 outage replayed with run rows: balance 0, the last hours all
    rejected with ``insufficient_credits``, and nothing charged since."""
    tenant, schedules = seed_governance(conn, version, now, hours=24)
    cutoff = now - timedelta(hours=failing_hours)
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE scheduled_for > %s").format(
            sql.Identifier(runs_table(version))
        ),
        (cutoff,),
    )
    conn.execute("DELETE FROM charge_receipts WHERE created_at > %s", (cutoff,))
    for charter, schedule_id in schedules.items():
        for slot in hourly_slots(charter, now, failing_hours):
            if slot > cutoff:
                add_run(
                    conn,
                    version,
                    schedule_id,
                    slot,
                    "error",
                    error_message="insufficient_credits",
                    error_code="insufficient_credits",
                    completed_at=slot + timedelta(seconds=2),
                )
    set_balance(conn, tenant, 0)
    return tenant


def seed_other_tenant(conn: Conn, version: str, index: int, now: datetime) -> Tenant:
    """Another customer's rows, which the exporter must never count."""
    tenant = create_tenant(
        conn,
        user_id=f"user-{index}",
        account_id=f"account-{index}",
        slug=f"tenant-{index}",
        balance_credits=123,
        system=False,
    )
    schedule_id = add_schedule(conn, tenant, "govern", temporal_schedule_id=None, message="OTHER")
    add_run(
        conn,
        version,
        schedule_id,
        now - timedelta(minutes=30),
        "error",
        error_message="insufficient_credits",
        error_code="insufficient_credits",
    )
    add_charge(conn, tenant, 999_999, now - timedelta(minutes=30), debit=False)
    return tenant
