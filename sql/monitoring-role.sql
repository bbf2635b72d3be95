-- A least-privilege, read-only role for governance-exporter.
--
-- Run it as the database owner in the Cogni database, once per database:
--     psql "$COGNI_DATABASE_URL" -f sql/monitoring-role.sql
-- then give the role a password (kept out of this file):
--     ALTER ROLE governance_exporter PASSWORD '...';
-- and point the exporter at it:
--     GOVERNANCE_EXPORTER_DATABASE_URL=postgresql://governance_exporter@db/cogni
--
-- The role is neither superuser nor BYPASSRLS: row-level security applies to it,
-- and the exporter sets app.current_user_id to the system principal in every
-- transaction so that it sees the governance account's rows and no others.
-- It may SELECT only the columns the exporter reads (and those the tables'
-- row-level security policies look at). It works on every schema version
-- (schedule_runs of 2026-02, graph_runs of 2026-03 and later, ingestion_cursors
-- and the attribution ledger's tables where they exist) and can be run again after a migration. docs/least-privilege.md explains every grant, and what the role
-- can still do.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'governance_exporter') THEN
        CREATE ROLE governance_exporter LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO governance_exporter', current_database());
END
$$;

-- Backstops on the server side, whatever the client does: read-only by default,
-- no statement longer than 10 s (the exporter sets a shorter one per transaction),
-- no transaction left open, and a bound on connections (an HA pair of exporters
-- with the default pool of 2 needs 4; raise it for more replicas or a larger pool).
ALTER ROLE governance_exporter CONNECTION LIMIT 10;
ALTER ROLE governance_exporter SET default_transaction_read_only = on;
ALTER ROLE governance_exporter SET statement_timeout = '10s';
ALTER ROLE governance_exporter SET idle_in_transaction_session_timeout = '30s';
GRANT USAGE ON SCHEMA public TO governance_exporter;

GRANT SELECT (id, slug, owner_user_id, balance_credits)
    ON billing_accounts TO governance_exporter;
GRANT SELECT (billing_account_id, charged_credits, created_at, run_id)
    ON charge_receipts TO governance_exporter;
GRANT SELECT (id, user_id, billing_account_id)
    ON execution_grants TO governance_exporter;
GRANT SELECT (id, owner_user_id, execution_grant_id, temporal_schedule_id, graph_id, input,
              cron, timezone, enabled, next_run_at, created_at)
    ON schedules TO governance_exporter;

DO $$
BEGIN
    IF to_regclass('graph_runs') IS NOT NULL THEN
        GRANT SELECT (schedule_id, run_id, requested_by, run_kind, scheduled_for, started_at,
                      completed_at, status, error_code, error_message)
            ON graph_runs TO governance_exporter;
    END IF;
    IF to_regclass('schedule_runs') IS NOT NULL THEN
        GRANT SELECT (schedule_id, run_id, scheduled_for, completed_at, status, error_message)
            ON schedule_runs TO governance_exporter;
    END IF;
    -- The daily ledger collection writes no runs; its trace is retrieved_at (no
    -- row-level security on this table, and nothing in it is a tenant's).
    IF to_regclass('ingestion_cursors') IS NOT NULL THEN
        GRANT SELECT (scope_id, retrieved_at) ON ingestion_cursors TO governance_exporter;
    END IF;
    -- The attribution ledger (2026-08 on): the collect is judged by its epochs, the
    -- webhook plane by its receipts. Neither table has row-level security, and no
    -- tenant's data is in these columns.
    IF to_regclass('epochs') IS NOT NULL THEN
        GRANT SELECT (id, node_id, scope_id, status, period_start, period_end, closed_at)
            ON epochs TO governance_exporter;
    END IF;
    IF to_regclass('ingestion_receipts') IS NOT NULL THEN
        GRANT SELECT (node_id, event_time, ingested_at) ON ingestion_receipts TO governance_exporter;
    END IF;
    -- Distributions force row-level security with no policy: these grants let a role
    -- with BYPASSRLS read them; this role (NOBYPASSRLS) still sees no row, and the
    -- exporter reports them as not observable, never as a problem.
    IF to_regclass('claimant_liabilities') IS NOT NULL THEN
        GRANT SELECT (node_id, scope_id, settled_revision_id, created_at)
            ON claimant_liabilities TO governance_exporter;
    END IF;
    IF to_regclass('epoch_distribution_manifests') IS NOT NULL THEN
        GRANT SELECT (node_id, scope_id, epoch_id)
            ON epoch_distribution_manifests TO governance_exporter;
    END IF;
END
$$;
