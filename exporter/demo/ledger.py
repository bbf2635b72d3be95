"""Writes the attribution ledger's rows (schema-2026-08-full.sql) as the source project does.

Epochs of weekly windows starting on Monday (UTC), one open per (node_id, scope_id);
webhook receipts; the operator's per-node dispatch schedules; a finalized epoch's
statement, manifest and pending liabilities. Through an owner or superuser
connection, like ``exporter.demo.scenario``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from exporter.demo.scenario import DEFAULT_SCOPE_ID, Conn, Tenant, add_schedule

NODE_ID = "538b4da2-bd59-4c3a-928a-8a40b6627205"
WEEK = timedelta(days=7)
DISPATCH_GRAPH_ID = "task:/api/internal/attribution/collect"


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding ``at``: where the ledger's windows start."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def add_epoch(
    conn: Conn,
    status: str,
    period_start: datetime,
    *,
    period_end: datetime | None = None,
    node_id: str = NODE_ID,
    scope_id: str = DEFAULT_SCOPE_ID,
    closed_at: datetime | None = None,
) -> int:
    """One epoch; a finalized one is closed when its window ended (unless told)."""
    end = period_end or period_start + WEEK
    if status == "finalized" and closed_at is None:
        closed_at = end + timedelta(days=1)
    row = conn.execute(
        "INSERT INTO public.epochs (node_id, scope_id, status, period_start, period_end,"
        " weight_config, opened_at, closed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (node_id, scope_id, status, period_start, end, json.dumps({}), period_start, closed_at),
    ).fetchone()
    if row is None:  # INSERT ... RETURNING yields its row
        raise RuntimeError("the epoch was not created")
    return int(row[0])


def healthy_epochs(
    conn: Conn,
    now: datetime,
    *,
    weeks: int = 4,
    node_id: str = NODE_ID,
    scope_id: str = DEFAULT_SCOPE_ID,
) -> list[int]:
    """A collect on time: this week's epoch open, last week's in review (its approvers
    have days yet), the ones before finalized."""
    current = week_start(now)
    ids = [add_epoch(conn, "open", current, node_id=node_id, scope_id=scope_id)]
    ids.append(add_epoch(conn, "review", current - WEEK, node_id=node_id, scope_id=scope_id))
    for back in range(2, weeks + 1):
        start = current - back * WEEK
        ids.append(add_epoch(conn, "finalized", start, node_id=node_id, scope_id=scope_id))
    return ids


def add_receipts(
    conn: Conn, ingested: Iterable[datetime], *, node_id: str = NODE_ID, source: str = "github"
) -> int:
    """One GitHub event per time: delivered 20 s after it happened."""
    count = 0
    for at in ingested:
        conn.execute(
            "INSERT INTO public.ingestion_receipts (node_id, receipt_id, source, event_type,"
            " platform_user_id, payload_hash, producer, producer_version, event_time,"
            " retrieved_at, ingested_at) VALUES (%s, %s, %s, 'pull_request', 'u1', 'h',"
            " 'webhook', '1', %s, %s, %s)",
            (node_id, f"{source}:{uuid.uuid4().hex}", source, at - timedelta(seconds=20), at, at),
        )
        count += 1
    return count


def every(step: timedelta, until: datetime, span: timedelta) -> list[datetime]:
    """Times ``step`` apart over ``span`` up to ``until`` (newest last)."""
    times = []
    at = until
    while at > until - span:
        times.append(at)
        at -= step
    return sorted(times)


def add_dispatch_schedule(
    conn: Conn,
    tenant: Tenant,
    node_id: str,
    *,
    charter: str = "ledger_ingest",
    cron: str = "0 6 * * *",
    enabled: bool = True,
    next_run_at: datetime | None = None,
    temporal_schedule_id: str | None = "",
) -> str:
    """The operator's schedule of one node's collect (since 2026-08-12)."""
    route = "/api/internal/attribution/collect"
    tsid = f"governance:{node_id}:{charter}" if temporal_schedule_id == "" else temporal_schedule_id
    return add_schedule(
        conn,
        tenant,
        charter,
        cron=cron,
        enabled=enabled,
        next_run_at=next_run_at,
        temporal_schedule_id=tsid,
        graph_id=DISPATCH_GRAPH_ID,
        input_doc={"route": route, "payload": {"nodeId": node_id}},
    )


def add_distribution(
    conn: Conn,
    epoch_id: int,
    *,
    node_id: str = NODE_ID,
    scope_id: str = DEFAULT_SCOPE_ID,
    manifest: bool = True,
    pending: int = 0,
    created_at: datetime | None = None,
) -> None:
    """A finalized epoch's statement, its manifest (optional) and pending liabilities."""
    row = conn.execute(
        "INSERT INTO public.epoch_statements (node_id, epoch_id, final_allocation_set_hash,"
        " pool_total_credits, statement_lines_json) VALUES (%s, %s, 'h', 1000, '[]')"
        " RETURNING id",
        (node_id, epoch_id),
    ).fetchone()
    if row is None:
        raise RuntimeError("the statement was not created")
    if manifest:
        conn.execute(
            "INSERT INTO public.epoch_distribution_manifests (node_id, scope_id, epoch_id,"
            " distribution_id, statement_hash, merkle_root, chain_id, token_address,"
            " distribution_amount, total_allocated) VALUES (%s, %s, %s, %s, 'h', 'r', 8453,"
            " '0xtoken', 1000, 1000)",
            (node_id, scope_id, epoch_id, f"dist-{epoch_id}"),
        )
    for index in range(pending):
        conn.execute(
            "INSERT INTO public.claimant_liabilities (node_id, scope_id, source_epoch_id,"
            " statement_id, claimant_key, amount_atomic, receipt_ids_json, created_at)"
            " VALUES (%s, %s, %s, %s, %s, 10, '[]', coalesce(%s, now()))",
            (node_id, scope_id, epoch_id, row[0], f"claimant-{index}", created_at),
        )
