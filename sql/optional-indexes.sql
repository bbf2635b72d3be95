-- Optional indexes for governance-exporter: constant database work per scrape.
--
-- Without them the exporter is correct, and most of what it reads is bounded by
-- the window (24 h of the governance account's rows, found through the schema's
-- own (schedule_id, scheduled_for), (requested_by, started_at) and
-- (billing_account_id, created_at) indexes). Four facts are not: "when did this
-- charter last succeed" and "when did it last fail", and the same two for each
-- kind of governance work without a schedule (PR reviews and other webhook runs).
-- The schema can only answer them by walking runs backwards from now, row by row,
-- until one has the wanted status:
--   * last failure, on a healthy node: back through every run ever kept, since
--     nothing failed (30 days of hourly runs: 720 rows per charter per scrape);
--   * last success, during an incident: back through the whole incident, the
--     longer it lasts the more it costs (exactly when the database is under stress);
--   * runs without a schedule (PR reviews): the system principal's runs are
--     walked backwards on the (requested_by, started_at) index, its scheduled
--     runs too, until one of the kind has the wanted status: a few rows on a
--     healthy node, the whole incident during one (4,600 heap pages for 3 days
--     at 1,344 PR reviews a day), and on the 2026-03 schema, which lacks that
--     index, every run without a schedule the table keeps.
-- Each of those rows is a heap page visit, and in a shared table the pages of one
-- tenant's runs are spread among everyone else's.
--
-- These partial indexes make each lookup one index descent, whatever the history
-- and whatever the incident's length. The exporter's statements use them as they
-- are (the planner matches the partial predicates); nothing to configure.
-- Cost: the scheduled success index holds every successful scheduled run of every
-- tenant (about the size of graph_runs_schedule_slot_unique, a few hundred MB at
-- 7 M runs); the failure ones only the failed and skipped runs (small); the
-- unscheduled ones only runs without a schedule (on the 2026-10 schema: 112 KiB
-- for 30 days of 48 PR reviews a day). All are kept up to date on insert like any
-- other index.
--
-- Run as the table owner, with psql (CONCURRENTLY: no lock on writers; it cannot
-- run inside a transaction block, so no -1 / --single-transaction):
--     psql "$COGNI_DATABASE_URL" -f sql/optional-indexes.sql
-- It works on every schema version and may be run again. To remove:
--     DROP INDEX CONCURRENTLY graph_runs_last_success_idx, graph_runs_last_failure_idx,
--         graph_runs_unscheduled_success_idx, graph_runs_unscheduled_failure_idx;
--     (schedule_runs_last_… on the 2026-02 schema, which has no unscheduled runs)

SELECT to_regclass('graph_runs') IS NOT NULL AS has_graph_runs,
       to_regclass('schedule_runs') IS NOT NULL AS has_schedule_runs,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs') AND attname = 'requested_by'
                 AND NOT attisdropped) AS has_requested_by
\gset

\if :has_graph_runs
CREATE INDEX CONCURRENTLY IF NOT EXISTS graph_runs_last_success_idx
    ON graph_runs (schedule_id, scheduled_for) WHERE status = 'success';
CREATE INDEX CONCURRENTLY IF NOT EXISTS graph_runs_last_failure_idx
    ON graph_runs (schedule_id, scheduled_for) WHERE status IN ('error', 'skipped');
\endif

\if :has_requested_by
CREATE INDEX CONCURRENTLY IF NOT EXISTS graph_runs_unscheduled_success_idx
    ON graph_runs (requested_by, started_at) WHERE schedule_id IS NULL AND status = 'success';
CREATE INDEX CONCURRENTLY IF NOT EXISTS graph_runs_unscheduled_failure_idx
    ON graph_runs (requested_by, started_at)
    WHERE schedule_id IS NULL AND status IN ('error', 'skipped');
\endif

\if :has_schedule_runs
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedule_runs_last_success_idx
    ON schedule_runs (schedule_id, scheduled_for) WHERE status = 'success';
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedule_runs_last_failure_idx
    ON schedule_runs (schedule_id, scheduled_for) WHERE status IN ('error', 'skipped');
\endif
