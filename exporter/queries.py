"""Every SQL statement the exporter runs, as text; nothing else lives here.

Only statement text, and the small helpers that compose it for a schema version
(runs table, error_code and requested_by columns, which differ between the
schemas of ``exporter.snapshot``): no connection, no transaction, no rows.
``exporter.source`` runs them, all in one round trip per collection.

The ``READ_*`` statements with ``{...}`` placeholders are templates, completed
per schema version with psycopg.sql (identifiers and literals, never string
formatting) by ``runs_statement``. ``for_schema`` gives every statement of one
collection (``Statements``), composed once per schema version.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import LiteralString

from psycopg import sql

from exporter.ledger_queries import (
    DISPATCH_PREDICATE,
    LEDGER_CATALOG_COLUMNS,
    READ_LAST_REVIEW,
    READ_LEDGER_DISTRIBUTIONS,
    READ_LEDGER_EPOCHS,
    READ_LEDGER_RECEIPTS,
)
from exporter.model import BLANK_CHARACTERS
from exporter.snapshot import SCHEMA_2026_03, SCHEMA_2026_10, SchemaInfo

# How many of the latest runs are read, and how much of each error message.
RECENT_RUNS_LIMIT = 10
MESSAGE_PREFIX_CHARS = 200

# --- statements -----------------------------------------------------------------

# Pooled connections are in autocommit mode; a collection states its transaction
# itself, so that BEGIN, the reads and COMMIT travel in one pipeline.
BEGIN_READ_ONLY: LiteralString = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
COMMIT: LiteralString = "COMMIT"

SET_TRANSACTION_CONTEXT: LiteralString = """
SELECT set_config('app.current_user_id', %(rls_user_id)s, true),
       set_config('statement_timeout', %(statement_timeout_ms)s, true)
"""

# Which schema this is, and what this role may read of it. A node migrated to
# 0021-0023 keeps graph_runs' schedule-only policy (0024 widened it to
# requested_by): under row-level security its runs without a schedule are
# invisible, which must be said, not read as "none".
READ_CATALOG: LiteralString = (
    """
SELECT to_regclass('schedule_runs') IS NOT NULL AS has_schedule_runs,
       to_regclass('graph_runs') IS NOT NULL AS has_graph_runs,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'error_code' AND NOT attisdropped) AS graph_runs_has_error_code,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'requested_by' AND NOT attisdropped) AS graph_runs_has_requested_by,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'state_key' AND NOT attisdropped) AS graph_runs_has_state_key,
       coalesce(has_column_privilege(to_regclass('ingestion_cursors'), 'scope_id', 'SELECT')
                AND has_column_privilege(to_regclass('ingestion_cursors'), 'retrieved_at',
                                         'SELECT'),
                false) AS ingestion_cursors_readable,
       coalesce(row_security_active(to_regclass('graph_runs'))
                AND NOT EXISTS (SELECT 1 FROM pg_policy p
                                WHERE p.polrelid = to_regclass('graph_runs')
                                  AND pg_get_expr(p.polqual, p.polrelid) LIKE '%%requested_by%%'),
                false) AS unscheduled_runs_hidden"""
    + LEDGER_CATALOG_COLUMNS
)

READ_ACCOUNT: LiteralString = """
SELECT id AS account_id, balance_credits::numeric AS balance_credits
FROM billing_accounts
WHERE slug = %(account)s
"""

# The (billing_account_id, created_at) index bounds this to the window's rows.
# count(c.charged_credits) (NOT NULL, and granted to the monitoring role), not
# count(*): with no charge in the window the LEFT JOIN still yields one
# NULL-padded row, which count(*) would count as a charge.
READ_SPEND: LiteralString = """
SELECT coalesce(sum(c.charged_credits), 0)::numeric AS spent_credits,
       count(c.charged_credits) AS charges,
       (SELECT max(l.created_at) FROM charge_receipts l
        WHERE l.billing_account_id = a.id AND l.created_at <= %(now)s) AS last_charge_at
FROM billing_accounts a
LEFT JOIN charge_receipts c
       ON c.billing_account_id = a.id
      AND c.created_at > %(since)s AND c.created_at <= %(now)s
WHERE a.slug = %(account)s
GROUP BY a.id
"""

_GOVERNANCE_SCHEDULE_IDS: LiteralString = """
SELECT s.id
FROM schedules s
JOIN execution_grants g ON g.id = s.execution_grant_id
JOIN billing_accounts a ON a.id = g.billing_account_id
WHERE a.slug = %(account)s
"""

# The account's schedules: its charters, and apart from them the operator's
# dispatch schedules of other nodes' collects (ledger_queries.DISPATCH_PREDICATE),
# which neither page as charters nor take the charters' cap.
_ACCOUNT_SCHEDULES: LiteralString = """
SELECT s.id::text AS schedule_id, s.temporal_schedule_id, s.input ->> 'message' AS message,
       s.cron, s.timezone, s.enabled, s.next_run_at, s.graph_id,
       s.input ->> 'scopeId' AS scope_id
FROM schedules s
JOIN execution_grants g ON g.id = s.execution_grant_id
JOIN billing_accounts a ON a.id = g.billing_account_id
WHERE a.slug = %(account)s AND """

READ_SCHEDULES: LiteralString = (
    _ACCOUNT_SCHEDULES
    + "NOT "
    + DISPATCH_PREDICATE
    + """
ORDER BY s.created_at, s.id
LIMIT %(schedule_limit)s
"""
)

READ_DISPATCH_SCHEDULES: LiteralString = (
    _ACCOUNT_SCHEDULES
    + DISPATCH_PREDICATE
    + """
ORDER BY s.created_at, s.id
LIMIT %(dispatch_limit)s
"""
)

# Runs table and error_code column depend on the schema version, so these are
# templates completed with psycopg.sql (identifiers, never string formatting).
READ_RUN_COUNTS: LiteralString = (
    """
SELECT r.schedule_id::text AS schedule_id, r.status, {error_code} AS error_code,
       left(r.error_message, {prefix}) AS error_message, count(*) AS runs
FROM {runs} r
WHERE r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
  AND r.scheduled_for > %(since)s AND r.scheduled_for <= %(now)s
GROUP BY 1, 2, 3, 4
"""
)

# Latest run by scheduled_for, walking the unique (schedule_id, scheduled_for)
# index backwards and stopping at the first match. status is compared exactly
# (model.normalise_status does the same): the partial indexes of
# sql/optional-indexes.sql are used only while the planner can see that this
# predicate implies theirs, and any expression on status (lower, btrim, or an
# OR with one) hides that. btrim on the message and code costs no index and
# matches model.is_failure: a message of blank characters only is no error.
READ_LAST_OUTCOMES: LiteralString = (
    """
SELECT s.id::text AS schedule_id,
       (SELECT coalesce(r.completed_at, r.scheduled_for) FROM {runs} r
        WHERE r.schedule_id = s.id AND r.scheduled_for <= %(now)s AND r.status = 'success'
        ORDER BY r.scheduled_for DESC LIMIT 1) AS last_success_at,
       (SELECT coalesce(r.completed_at, r.scheduled_for) FROM {runs} r
        WHERE r.schedule_id = s.id AND r.scheduled_for <= %(now)s
          AND (r.status = 'error'
               OR (r.status = 'skipped'
                   AND (btrim(coalesce(r.error_message, ''), {blank}) <> ''
                        OR btrim(coalesce({error_code}, ''), {blank}) <> '')))
        ORDER BY r.scheduled_for DESC LIMIT 1) AS last_failure_at
FROM schedules s
WHERE s.id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
"""
)

# The latest runs of the account, scheduled or not: each schedule's newest by
# its (schedule_id, scheduled_for) index, and (2026-03 on) the newest runs
# without a schedule by the (requested_by, started_at) index; a run without a
# schedule is dated by its start. _RECENT_UNSCHEDULED is composed in by schema.
READ_RECENT_RUNS: LiteralString = (
    """
SELECT recent.* FROM (
SELECT s.id::text AS schedule_id, r.scheduled_for, r.status, r.error_code,
       r.error_message, r.run_kind
FROM schedules s
CROSS JOIN LATERAL (
    SELECT r.scheduled_for, r.status, {error_code} AS error_code,
           left(r.error_message, {prefix}) AS error_message, {run_kind} AS run_kind
    FROM {runs} r
    WHERE r.schedule_id = s.id AND r.scheduled_for <= %(now)s
    ORDER BY r.scheduled_for DESC
    LIMIT {limit}
) r
WHERE s.id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
{recent_unscheduled}
) recent
ORDER BY recent.scheduled_for DESC
LIMIT {limit}
"""
)


# The account's owner is the principal its runs without a schedule are
# requested by (PR reviews, webhooks); the role sweep writes the account's slug
# itself ('cogni_system'). Named through the account, never through row-level
# security: a BYPASSRLS role sees every tenant's runs.
_ACCOUNT_OWNER: LiteralString = (
    "(SELECT a.owner_user_id FROM billing_accounts a WHERE a.slug = %(account)s"
    " UNION ALL SELECT %(account)s::text)"
)

# Runs without a schedule: the window's, counted by kind, principal, status and
# error, read once through the (requested_by, started_at) index of migration 0023
# (window_counts); each row also carries the latest success and failure of its
# kind and principal (the model takes the latest over principals), looking back
# at most LOOKBACK, looked up once per kind and principal (outcomes, materialised:
# joined unmaterialised, the lookups would run again for every row), bounded by
# an index the node has:
# - with sql/optional-indexes.sql's unscheduled indexes ("indexed"), one descent
#   of a partial index each;
# - else with the (requested_by, started_at) index of migration 0023 ("walkable"),
#   a walk backwards through the owner's runs (its scheduled ones too), stopped
#   at the first match: its cost is the owner's runs since the last success or
#   failure, not 30 days of them. Written as a subquery with a LIMIT the planner
#   cannot evaluate (NULL at run time: no limit), so that it is neither flattened
#   nor planned for all its rows: the planner plans it for its default tenth,
#   and the walk wins. Flattened (or fenced by OFFSET 0, planned for all rows) the
#   planner, which takes "requested by the owner" and "no schedule" to be
#   independent though every run without a schedule is the system principal's,
#   expects almost no match and reads and sorts 30 days of the owner's runs;
# - else (2026-03, before 0023) the same statement as with the partial indexes:
#   graph_runs_schedule_idx's entries for "no schedule", every run without a
#   schedule the table keeps, then the owner's among them.
_OWNER_RUNS_NEWEST_FIRST: LiteralString = """(
    SELECT r.started_at, r.completed_at, r.schedule_id, r.run_kind, r.status,
           r.error_message, r.error_code
    FROM graph_runs r
    WHERE r.requested_by = k.owner
      AND r.started_at > %(lookback)s AND r.started_at <= %(now)s
    ORDER BY r.started_at DESC
    LIMIT (SELECT NULL::bigint)) r"""
_UNSCHEDULED_OF_KIND: LiteralString = """
        WHERE r.schedule_id IS NULL AND r.run_kind IS NOT DISTINCT FROM k.run_kind"""
_IN_LOOKBACK: LiteralString = """
          AND r.requested_by = k.owner
          AND r.started_at > %(lookback)s AND r.started_at <= %(now)s
        ORDER BY r.started_at DESC"""
_IS_SUCCESS: LiteralString = """
          AND r.status = 'success'"""
_IS_FAILURE: LiteralString = """
          AND (r.status = 'error'
               OR (r.status = 'skipped'
                   AND (btrim(coalesce(r.error_message, ''), {blank}) <> ''
                        OR btrim(coalesce(r.error_code, ''), {blank}) <> '')))"""
_LATEST: LiteralString = "SELECT coalesce(r.completed_at, r.started_at) FROM "


def _valid_index(name: LiteralString) -> LiteralString:
    return (
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = to_regclass('"
        + name
        + "') AND i.indisvalid)"
    )


def _latest_unscheduled(indexed: LiteralString, outcome: LiteralString) -> LiteralString:
    """The latest run of kind ``k`` without a schedule with ``outcome``: a descent of
    its partial index where ``k.<indexed>`` (or where nothing can be walked), else
    the walk backwards through the owner's runs."""
    return (
        "CASE WHEN k."
        + indexed
        + """ OR NOT k.walkable
            THEN ("""
        + _LATEST
        + "graph_runs r"
        + _UNSCHEDULED_OF_KIND
        + outcome
        + _IN_LOOKBACK
        + """ LIMIT 1)
            ELSE ("""
        + _LATEST
        + _OWNER_RUNS_NEWEST_FIRST
        + _UNSCHEDULED_OF_KIND
        + outcome
        + """ LIMIT 1)
       END"""
    )


READ_UNSCHEDULED_RUNS: LiteralString = (
    """
WITH window_counts AS MATERIALIZED (
    SELECT r.run_kind, r.requested_by AS owner, r.status, r.error_code,
           left(r.error_message, 200) AS error_message, count(*) AS runs
    FROM graph_runs r
    WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
      AND r.schedule_id IS NULL
      AND r.started_at > %(since)s AND r.started_at <= %(now)s
    GROUP BY 1, 2, 3, 4, 5
), outcomes AS MATERIALIZED (
SELECT k.run_kind, k.owner,
       """
    + _latest_unscheduled("success_indexed", _IS_SUCCESS)
    + """ AS last_success_at,
       """
    + _latest_unscheduled("failure_indexed", _IS_FAILURE)
    + """ AS last_failure_at
FROM (SELECT DISTINCT w.run_kind, w.owner FROM window_counts w) k0
CROSS JOIN LATERAL (
    SELECT k0.run_kind, k0.owner,
           """
    + _valid_index("graph_runs_unscheduled_success_idx")
    + """ AS success_indexed,
           """
    + _valid_index("graph_runs_unscheduled_failure_idx")
    + """ AS failure_indexed,
           """
    + _valid_index("graph_runs_requested_by_started_at_idx")
    + """ AS walkable) k
)
SELECT w.run_kind, w.status, w.error_code, w.error_message, w.runs,
       o.last_success_at, o.last_failure_at
FROM window_counts w
JOIN outcomes o ON o.owner = w.owner AND o.run_kind IS NOT DISTINCT FROM w.run_kind
"""
)

# Which work ate the window's credits: each charge joined to the account's run
# with its run_id (one of its schedules', or requested by its owner).
READ_ATTRIBUTED_SPEND: LiteralString = (
    """
SELECT r.run_kind, r.schedule_id::text AS schedule_id,
       sum(c.charged_credits)::numeric AS spent_credits
FROM charge_receipts c
JOIN billing_accounts a ON a.id = c.billing_account_id
LEFT JOIN LATERAL (
    SELECT {run_kind} AS run_kind, r.schedule_id FROM {runs} r
    WHERE r.run_id = c.run_id
      AND ({requested_by_owner} OR r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """))
    LIMIT 1
) r ON true
WHERE a.slug = %(account)s AND c.created_at > %(since)s AND c.created_at <= %(now)s
GROUP BY 1, 2
"""
)

# The same sums where graph_runs has its (requested_by, started_at) index (2026-10
# on): the window's charges are matched in one hash join with the account's runs
# of the window (the owner's through that index, the charters' through their
# (schedule_id, scheduled_for) index), read once, instead of one descent of
# graph_runs_run_id_idx per charge; only a charge whose run is not among them
# (begun before the window, or not the account's) is looked up as before.
READ_ATTRIBUTED_SPEND_JOINED: LiteralString = (
    """
WITH charges AS MATERIALIZED (
    SELECT c.run_id, c.charged_credits, a.owner_user_id, a.slug
    FROM charge_receipts c
    JOIN billing_accounts a ON a.id = c.billing_account_id
    WHERE a.slug = %(account)s AND c.created_at > %(since)s AND c.created_at <= %(now)s
), window_runs AS (
    SELECT DISTINCT ON (w.run_id) w.run_id, w.run_kind, w.schedule_id
    FROM (SELECT r.run_id, r.run_kind, r.schedule_id FROM graph_runs r
          WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
            AND r.started_at > %(since)s AND r.started_at <= %(now)s
          UNION ALL
          SELECT r.run_id, r.run_kind, r.schedule_id FROM graph_runs r
          WHERE r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
            AND r.scheduled_for > %(since)s AND r.scheduled_for <= %(now)s) w
)
SELECT CASE WHEN w.run_id IS NULL THEN r.run_kind ELSE w.run_kind END AS run_kind,
       (CASE WHEN w.run_id IS NULL THEN r.schedule_id ELSE w.schedule_id END)::text
           AS schedule_id,
       sum(c.charged_credits)::numeric AS spent_credits
FROM charges c
LEFT JOIN window_runs w ON w.run_id = c.run_id
LEFT JOIN LATERAL (
    SELECT r.run_kind, r.schedule_id FROM graph_runs r
    WHERE w.run_id IS NULL AND r.run_id = c.run_id
      AND (r.requested_by IN (c.owner_user_id, c.slug) OR r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """))
    LIMIT 1
) r ON true
GROUP BY 1, 2
"""
)

# ingestion_cursors has no tenant: one row per ledger source stream of a scope.
READ_LEDGER_CURSORS: LiteralString = """
SELECT scope_id::text AS scope_id, max(retrieved_at) AS last_retrieved_at
FROM ingestion_cursors
WHERE retrieved_at <= %(now)s
GROUP BY scope_id
"""

# Runs that finished in (finished_after, finished_until], for counters that a
# re-created schedule (whose runs the cascade deletes) cannot decrease. Bounded
# by the indexed start columns: a run is assumed to finish within a day.
READ_FINISHED_RUNS: LiteralString = (
    """
SELECT 'system_scheduled'::text AS run_kind, r.status, {error_code} AS error_code,
       left(r.error_message, {prefix}) AS error_message, count(*) AS runs
FROM {runs} r
WHERE r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
  AND r.scheduled_for > %(finished_after)s - interval '1 day'
  AND r.scheduled_for <= %(finished_until)s
  AND r.completed_at > %(finished_after)s AND r.completed_at <= %(finished_until)s
GROUP BY 1, 2, 3, 4
{unscheduled}
"""
)
_FINISHED_UNSCHEDULED: LiteralString = (
    """
UNION ALL
SELECT r.run_kind, r.status, r.error_code, left(r.error_message, {prefix}), count(*)
FROM graph_runs r
WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
  AND r.schedule_id IS NULL
  AND r.started_at > %(finished_after)s - interval '1 day'
  AND r.started_at <= %(finished_until)s
  AND r.completed_at > %(finished_after)s AND r.completed_at <= %(finished_until)s
GROUP BY 1, 2, 3, 4
"""
)


_RECENT_UNSCHEDULED: LiteralString = (
    """
UNION ALL
(SELECT NULL::text, r.started_at, r.status, r.error_code, left(r.error_message, {prefix}),
        r.run_kind
 FROM graph_runs r
 WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
   AND r.schedule_id IS NULL AND r.started_at <= %(now)s
 ORDER BY r.started_at DESC
 LIMIT {limit})
"""
)

# The same rows where graph_runs has its (requested_by, started_at) index (2026-10
# on): each principal's runs walked backwards, stopped at the tenth without a
# schedule (the fence of _OWNER_RUNS_NEWEST_FIRST, for the same reason). Left to
# the planner, it reads and sorts every run without a schedule the owner has.
_RECENT_UNSCHEDULED_WALK: LiteralString = """
UNION ALL
(SELECT NULL::text, r.started_at, r.status, r.error_code, left(r.error_message, {prefix}),
        r.run_kind
 FROM (SELECT a.owner_user_id AS who FROM billing_accounts a WHERE a.slug = %(account)s
       UNION
       SELECT %(account)s::text) p
 CROSS JOIN LATERAL (
    SELECT r.* FROM (
        SELECT r.started_at, r.status, r.error_code, r.error_message, r.run_kind, r.schedule_id
        FROM graph_runs r
        WHERE r.requested_by = p.who AND r.started_at <= %(now)s
        ORDER BY r.started_at DESC
        LIMIT (SELECT NULL::bigint)) r
    WHERE r.schedule_id IS NULL
    ORDER BY r.started_at DESC
    LIMIT {limit}) r
 ORDER BY r.started_at DESC
 LIMIT {limit})
"""


def _escaped_literal(text: str) -> sql.SQL:
    """``text`` as an escape-string literal of printable characters (E'\\x09'), so
    that statements stay readable when printed or copied into a config file."""
    return sql.SQL("E'" + "".join(f"\\x{ord(c):02x}" for c in text) + "'")


BLANK_LITERAL = _escaped_literal(BLANK_CHARACTERS)

# A statement as psycopg takes it: plain text, or a template completed with psycopg.sql.
Statement = LiteralString | sql.Composed


# Composed once per template and schema version: not on every collection.
@functools.lru_cache(maxsize=64)
def runs_statement(template: LiteralString, schema: SchemaInfo) -> sql.Composed:
    """A ``{runs}`` template completed for ``schema``'s runs table and columns."""
    error_code = sql.SQL("r.error_code" if schema.has_error_code else "NULL::text")
    unscheduled = sql.SQL(_FINISHED_UNSCHEDULED if schema.has_requested_by else "")
    recent_unscheduled = sql.SQL(
        ""
        if not schema.has_requested_by
        else _RECENT_UNSCHEDULED
        if schema.version == SCHEMA_2026_03
        else _RECENT_UNSCHEDULED_WALK
    )
    return sql.SQL(template).format(
        runs=sql.Identifier(schema.runs_table),
        error_code=error_code,
        run_kind=sql.SQL("r.run_kind" if schema.has_requested_by else "'system_scheduled'::text"),
        requested_by_owner=sql.SQL(
            "r.requested_by IN (a.owner_user_id, a.slug)" if schema.has_requested_by else "false"
        ),
        unscheduled=unscheduled.format(prefix=sql.Literal(MESSAGE_PREFIX_CHARS)),
        recent_unscheduled=recent_unscheduled.format(
            prefix=sql.Literal(MESSAGE_PREFIX_CHARS), limit=sql.Literal(RECENT_RUNS_LIMIT)
        ),
        prefix=sql.Literal(MESSAGE_PREFIX_CHARS),
        limit=sql.Literal(RECENT_RUNS_LIMIT),
        blank=BLANK_LITERAL,
    )


UNSCHEDULED_RUNS = sql.SQL(READ_UNSCHEDULED_RUNS).format(blank=BLANK_LITERAL)


@dataclass(frozen=True)
class Statements:
    """The statements of one collection for one schema version, in the order they
    are sent; ``None`` where that schema (or the role's grants) has nothing to read."""

    context: Statement
    catalog: Statement
    account: Statement
    spend: Statement
    schedules: Statement
    run_counts: Statement
    last_outcomes: Statement
    recent_runs: Statement
    attributed_spend: Statement
    finished_runs: Statement
    unscheduled_counts: Statement | None
    ledger_cursors: Statement | None
    # The attribution ledger's (exporter.ledger_queries), where its tables are readable.
    dispatch_schedules: Statement
    ledger_epochs: Statement | None
    ledger_receipts: Statement | None
    last_review: Statement | None
    ledger_distributions: Statement | None

    def named(self) -> dict[str, str]:
        """Name -> text of each statement sent, in order (for docs and benchmarks)."""
        return {
            field.name: statement if isinstance(statement, str) else statement.as_string(None)
            for field in fields(self)
            if (statement := getattr(self, field.name)) is not None
        }


@functools.lru_cache(maxsize=16)
def for_schema(schema: SchemaInfo) -> Statements:
    """Every statement of one collection on ``schema``, composed once per version."""
    return Statements(
        context=SET_TRANSACTION_CONTEXT,
        catalog=READ_CATALOG,
        account=READ_ACCOUNT,
        spend=READ_SPEND,
        schedules=READ_SCHEDULES,
        run_counts=runs_statement(READ_RUN_COUNTS, schema),
        last_outcomes=runs_statement(READ_LAST_OUTCOMES, schema),
        recent_runs=runs_statement(READ_RECENT_RUNS, schema),
        attributed_spend=(
            READ_ATTRIBUTED_SPEND_JOINED
            if schema.has_requested_by and schema.version != SCHEMA_2026_03
            else runs_statement(READ_ATTRIBUTED_SPEND, schema)
        ),
        finished_runs=runs_statement(READ_FINISHED_RUNS, schema),
        unscheduled_counts=UNSCHEDULED_RUNS if schema.has_requested_by else None,
        ledger_cursors=READ_LEDGER_CURSORS if schema.ingestion_cursors_readable else None,
        dispatch_schedules=READ_DISPATCH_SCHEDULES,
        ledger_epochs=READ_LEDGER_EPOCHS if schema.ledger_epochs_readable else None,
        ledger_receipts=READ_LEDGER_RECEIPTS if schema.ledger_receipts_readable else None,
        last_review=(
            READ_LAST_REVIEW
            if schema.ledger_receipts_readable and schema.has_requested_by
            else None
        ),
        ledger_distributions=(
            READ_LEDGER_DISTRIBUTIONS if schema.ledger_distributions_readable else None
        ),
    )


def run_statements(schema: SchemaInfo | None = None) -> list[str]:
    """The statements of one collection, in order (for docs and benchmarks); the
    2026-10 schema unless ``schema`` says otherwise. BEGIN and COMMIT, which travel
    in the same pipeline, are left out."""
    schema = schema or SchemaInfo(
        SCHEMA_2026_10, "graph_runs", True, has_requested_by=True, ingestion_cursors_readable=True
    )
    return list(for_schema(schema).named().values())
