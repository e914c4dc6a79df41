-- Analysis runs in the background: AnalyzeImport records a job, a worker
-- claims it (a lease renewed with every chunk checked), stores the report
-- with the import and marks the job done. A job whose lease ran out (its
-- worker died) is claimed again; `generation` fences out a worker that lost
-- its job. One job per import: the latest analysis asked for.
CREATE TABLE analysis_jobs (
    import_id          UUID PRIMARY KEY REFERENCES imports (id) ON DELETE CASCADE,
    organization_id    BIGINT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- Incremented by every request and every claim; a worker writes only
    -- while the job still has the generation it claimed.
    generation         BIGINT NOT NULL DEFAULT 0,
    -- Claims of the current request (a claim after a worker died is another).
    attempts           INT NOT NULL DEFAULT 0,
    rows_done          BIGINT NOT NULL DEFAULT 0,
    rows_total         BIGINT NOT NULL DEFAULT 0,
    error              TEXT,
    requested_by_id    TEXT NOT NULL,
    requested_by_name  TEXT NOT NULL,
    requested_by_email TEXT NOT NULL,
    requested_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at         TIMESTAMPTZ,
    ended_at           TIMESTAMPTZ,
    -- A running job whose lease has passed is free to claim again.
    lease_until        TIMESTAMPTZ
);

CREATE INDEX analysis_jobs_waiting ON analysis_jobs (requested_at) WHERE state IN ('queued', 'running');
