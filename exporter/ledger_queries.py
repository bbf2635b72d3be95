"""The SQL text of the attribution ledger's reads (schema-2026-08-full.sql): statements only.

``exporter.source`` runs them in the collection's one read-only transaction, after
the catalog said the tables exist and this role may read them. Every statement is
bounded by an index the source project's own migrations create; none of ours is
needed:

- epochs: ``epochs_window_unique (node_id, scope_id, period_start, period_end)``
  walks the (node, scope) streams (a skip scan: one index probe per stream) and
  each stream's epochs (one row a week); ``epochs_one_open_per_node`` finds the
  open one.
- ingestion_receipts: ``ingestion_receipts_node_time_idx (node_id, event_time)``.
  There is no index on ``ingested_at``, so "the newest receipt" is read as the
  newest ingested_at among the node's ``RECEIPT_SAMPLE`` newest receipts by
  event_time, walking that index backwards. A webhook delivers an event minutes
  after it happened, so the newest deliveries are the newest events; a receipt a
  poll backfills late (old event_time, new ingested_at) can be missed, which is
  right for this question: it is not the webhook plane. The same rows give the
  node's recent cadence (their gaps), however long ago they came.
- graph_runs: ``graph_runs_requested_by_started_at_idx``, walked backwards to the latest
  PR review.
- claimant_liabilities: ``claimant_liabilities_pending_stream_idx`` (partial, pending
  only); epoch_distribution_manifests: ``..._node_scope_epoch_unique``.

Streams and nodes are capped (``%(ledger_stream_limit)s`` is the cap + 1, so the
caller can tell that rows were left out), as are the dispatch schedules.
"""

from __future__ import annotations

from typing import LiteralString

# How many of a node's newest receipts give its newest delivery and its cadence.
RECEIPT_SAMPLE = 50

# Columns appended to source.READ_CATALOG (its SELECT list goes on after them).
# Each part is readable when every column it reads exists and is granted: the
# columns are looked up in pg_attribute first, so a ledger of another migration
# (a column missing or renamed) reads as not readable instead of failing the
# collection, as has_column_privilege(table, 'name', ...) would.
LEDGER_CATALOG_COLUMNS: LiteralString = """,
       to_regclass('epochs') IS NOT NULL AS has_ledger,
       coalesce((SELECT count(*) = 7 AND bool_and(has_column_privilege(a.attrelid, a.attnum,
                                                                       'SELECT'))
                 FROM pg_attribute a
                 WHERE a.attrelid = to_regclass('epochs') AND NOT a.attisdropped
                   AND a.attname IN ('id', 'node_id', 'scope_id', 'status', 'period_start',
                                     'period_end', 'closed_at')),
                false) AS ledger_epochs_readable,
       coalesce((SELECT count(*) = 3 AND bool_and(has_column_privilege(a.attrelid, a.attnum,
                                                                       'SELECT'))
                 FROM pg_attribute a
                 WHERE a.attrelid = to_regclass('ingestion_receipts') AND NOT a.attisdropped
                   AND a.attname IN ('node_id', 'event_time', 'ingested_at')),
                false) AS ledger_receipts_readable,
       coalesce((SELECT count(*) = 7 AND bool_and(has_column_privilege(a.attrelid, a.attnum,
                                                                       'SELECT'))
                 FROM pg_attribute a
                 WHERE NOT a.attisdropped
                   AND ((a.attrelid = to_regclass('claimant_liabilities')
                         AND a.attname IN ('node_id', 'scope_id', 'settled_revision_id',
                                           'created_at'))
                        OR (a.attrelid = to_regclass('epoch_distribution_manifests')
                            AND a.attname IN ('node_id', 'scope_id', 'epoch_id'))))
                AND NOT row_security_active(to_regclass('claimant_liabilities'))
                AND NOT row_security_active(to_regclass('epoch_distribution_manifests')),
                false) AS ledger_distributions_readable
"""

# A schedule the operator runs for another node (or a node job): a task graph, a
# node-task id, or a governance id of three parts. Kept out of the charters.
DISPATCH_PREDICATE: LiteralString = """(s.graph_id LIKE 'task:%%'
       OR coalesce(s.temporal_schedule_id LIKE 'node-task:%%', false)
       OR coalesce(s.temporal_schedule_id ~ '^governance:[^:]+:.', false))"""

# The (node_id, scope_id) streams of epochs, one index probe each (a skip scan).
_EPOCH_STREAMS: LiteralString = """
WITH RECURSIVE streams AS (
    (SELECT e.node_id, e.scope_id FROM epochs e ORDER BY e.node_id, e.scope_id LIMIT 1)
    UNION ALL
    SELECT n.node_id, n.scope_id
    FROM streams p
    CROSS JOIN LATERAL (
        SELECT e.node_id, e.scope_id FROM epochs e
        WHERE (e.node_id, e.scope_id) > (p.node_id, p.scope_id)
        ORDER BY e.node_id, e.scope_id
        LIMIT 1
    ) n
)
"""

READ_LEDGER_EPOCHS: LiteralString = (
    _EPOCH_STREAMS
    + """
SELECT s.node_id::text AS node_id, s.scope_id::text AS scope_id,
       c.epochs_open, c.epochs_review, c.epochs_finalized,
       o.id AS open_epoch_id, o.period_start AS open_period_start,
       o.period_end AS open_period_end,
       l.id AS latest_epoch_id, l.period_start AS latest_period_start,
       l.period_end AS latest_period_end,
       r.id AS oldest_review_epoch_id, r.period_start AS oldest_review_period_start,
       r.period_end AS oldest_review_period_end,
       c.last_finalized_at
FROM (SELECT node_id, scope_id FROM streams LIMIT %(ledger_stream_limit)s) s
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE e.status = 'open') AS epochs_open,
           count(*) FILTER (WHERE e.status = 'review') AS epochs_review,
           count(*) FILTER (WHERE e.status = 'finalized') AS epochs_finalized,
           max(e.closed_at) FILTER (WHERE e.status = 'finalized') AS last_finalized_at
    FROM epochs e
    WHERE e.node_id = s.node_id AND e.scope_id = s.scope_id
) c
LEFT JOIN LATERAL (
    SELECT e.id, e.period_start, e.period_end FROM epochs e
    WHERE e.node_id = s.node_id AND e.scope_id = s.scope_id AND e.status = 'open'
    LIMIT 1
) o ON true
LEFT JOIN LATERAL (
    SELECT e.id, e.period_start, e.period_end FROM epochs e
    WHERE e.node_id = s.node_id AND e.scope_id = s.scope_id
    ORDER BY e.period_start DESC, e.period_end DESC
    LIMIT 1
) l ON true
LEFT JOIN LATERAL (
    SELECT e.id, e.period_start, e.period_end FROM epochs e
    WHERE e.node_id = s.node_id AND e.scope_id = s.scope_id AND e.status = 'review'
    ORDER BY e.period_start, e.period_end
    LIMIT 1
) r ON true
ORDER BY s.node_id, s.scope_id
"""
)

READ_LEDGER_RECEIPTS: LiteralString = (
    """
WITH RECURSIVE nodes AS (
    (SELECT r.node_id FROM ingestion_receipts r ORDER BY r.node_id LIMIT 1)
    UNION ALL
    SELECT n.node_id
    FROM nodes p
    CROSS JOIN LATERAL (
        SELECT r.node_id FROM ingestion_receipts r
        WHERE r.node_id > p.node_id
        ORDER BY r.node_id
        LIMIT 1
    ) n
)
SELECT p.node_id::text AS node_id,
       ARRAY(SELECT r.ingested_at FROM ingestion_receipts r
             WHERE r.node_id = p.node_id AND r.event_time <= %(now)s
             ORDER BY r.event_time DESC
             LIMIT """
    + str(RECEIPT_SAMPLE)
    + """) AS ingested_at
FROM (SELECT node_id FROM nodes LIMIT %(ledger_stream_limit)s) p
ORDER BY p.node_id
"""
)

# The latest PR review of the account: requested by its owner or, as the role
# sweep writes it, by the account's slug itself ('cogni_system'). No index of the
# node leads with run_kind, so each principal's runs are walked backwards through
# graph_runs_requested_by_started_at_idx and the walk stops at the first review:
# its cost is the principal's runs since its last review, not 30 days of them.
# The walk is a subquery with a LIMIT the planner cannot evaluate (NULL at run
# time: no limit), as in queries._OWNER_RUNS_NEWEST_FIRST (which says why):
# flattened, the planner ANDs graph_runs_run_kind_idx with 30 days of the
# principal's runs and sorts them.
READ_LAST_REVIEW: LiteralString = """
SELECT max(x.started_at) AS last_review_at
FROM (SELECT (SELECT r.started_at
              FROM (SELECT r.started_at, r.run_kind FROM graph_runs r
                    WHERE r.requested_by = p.who
                      AND r.started_at > %(lookback)s AND r.started_at <= %(now)s
                    ORDER BY r.started_at DESC
                    LIMIT (SELECT NULL::bigint)) r
              WHERE r.run_kind = 'system_webhook'
              ORDER BY r.started_at DESC
              LIMIT 1) AS started_at
      FROM (SELECT a.owner_user_id AS who FROM billing_accounts a WHERE a.slug = %(account)s
            UNION ALL
            SELECT %(account)s::text) p) x
"""

READ_LEDGER_DISTRIBUTIONS: LiteralString = (
    _EPOCH_STREAMS
    + """
SELECT s.node_id::text AS node_id, s.scope_id::text AS scope_id,
       m.manifests, p.pending_liabilities, p.oldest_pending_at,
       f.finalized_without_manifest, f.oldest_unmanifested_closed_at
FROM (SELECT node_id, scope_id FROM streams LIMIT %(ledger_stream_limit)s) s
CROSS JOIN LATERAL (
    SELECT count(*) AS manifests FROM epoch_distribution_manifests m
    WHERE m.node_id = s.node_id AND m.scope_id = s.scope_id
) m
CROSS JOIN LATERAL (
    SELECT count(*) AS pending_liabilities, min(l.created_at) AS oldest_pending_at
    FROM claimant_liabilities l
    WHERE l.node_id = s.node_id AND l.scope_id = s.scope_id AND l.settled_revision_id IS NULL
) p
CROSS JOIN LATERAL (
    SELECT count(*) AS finalized_without_manifest,
           min(e.closed_at) AS oldest_unmanifested_closed_at
    FROM epochs e
    WHERE e.node_id = s.node_id AND e.scope_id = s.scope_id AND e.status = 'finalized'
      AND NOT EXISTS (SELECT 1 FROM epoch_distribution_manifests m
                      WHERE m.node_id = e.node_id AND m.scope_id = e.scope_id
                        AND m.epoch_id = e.id)
) f
ORDER BY s.node_id, s.scope_id
"""
)
