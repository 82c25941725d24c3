-- Background jobs: CSV exports and imports, run off the request path by a
-- job runner on any node. A row is the job's whole durable state, so a job
-- whose node died is claimed again (its lease lapsed) and run to the end.

CREATE TABLE jobs (
    id              UUID        PRIMARY KEY,
    kind            TEXT        NOT NULL CHECK (kind IN (
                        'export_courses', 'export_sections', 'export_enrollments', 'export_unacked',
                        'import_courses', 'import_sections', 'import_enrollments')),
    state           TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    owner_id        BIGINT      NOT NULL REFERENCES users (id),
    -- What to export (filters, the announcement) or how to import.
    params          JSONB       NOT NULL DEFAULT '{}',
    -- An import's uploaded file, until the job is done with it.
    input_key       TEXT,
    -- The file the job made (an export, or an import's error report).
    output_key      TEXT,
    progress_done   INTEGER     NOT NULL DEFAULT 0,
    progress_total  INTEGER,
    -- What GET /api/tasks/{id} shows as `result` once the job succeeded.
    result          JSONB,
    error           TEXT,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    -- Which node runs it, until when; a lapsed lease can be claimed again.
    claimed_by      UUID,
    lease_until     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    -- When the job's files are deleted and its download ends.
    expires_at      TIMESTAMPTZ
);
CREATE INDEX jobs_claimable_idx ON jobs (created_at) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_expiring_idx ON jobs (expires_at) WHERE output_key IS NOT NULL;
CREATE INDEX jobs_owner_idx ON jobs (owner_id, created_at DESC);
