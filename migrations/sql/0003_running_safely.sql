-- Running imports safely: stop, the pause switch, retries with their
-- failure records, all-or-nothing rollback, and stale rows.

-- Who stopped an import, when and why; when an all-or-nothing import's rows
-- were rolled back (it failed or was stopped).
ALTER TABLE imports
    ADD COLUMN stopped_by_id     TEXT,
    ADD COLUMN stopped_by_name   TEXT,
    ADD COLUMN stopped_by_email  TEXT,
    ADD COLUMN stopped_at        TIMESTAMPTZ,
    ADD COLUMN stop_reason       TEXT,
    ADD COLUMN rolled_back_at    TIMESTAMPTZ;

-- A file of a stopped import that had not finished is `stopped`.
ALTER TABLE import_files DROP CONSTRAINT import_files_state_check;
ALTER TABLE import_files ADD CONSTRAINT import_files_state_check
    CHECK (state IN ('ready', 'invalid', 'queued', 'running', 'completed',
                     'completed_with_errors', 'failed', 'stopped'));

-- Rows older than the stored record (by `source_updated_at`) are `stale` and
-- leave it alone; rows an all-or-nothing import wrote and then rolled back
-- are counted in `rows_rolled_back` (created, updated and unchanged go to 0).
ALTER TABLE import_files
    ADD COLUMN rows_stale        BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN rows_rolled_back  BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chunks
    ADD COLUMN rows_stale        BIGINT NOT NULL DEFAULT 0,
    -- After a transient failure: no attempt before this time (backoff).
    ADD COLUMN not_before        TIMESTAMPTZ;

-- The pause switch: one row per paused scope (an organization, or every
-- organization when organization_id is NULL). Stored so it survives restarts
-- of every process; workers start no new chunk of a paused organization.
CREATE TABLE import_pauses (
    id                BIGSERIAL PRIMARY KEY,
    organization_id   BIGINT REFERENCES organizations (id),
    reason            TEXT NOT NULL,
    paused_by_id      TEXT NOT NULL,
    paused_by_name    TEXT NOT NULL,
    paused_by_email   TEXT NOT NULL,
    paused_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX import_pauses_scope ON import_pauses (COALESCE(organization_id, 0));

-- Every failed attempt at a chunk, for the developers who troubleshoot it:
-- what failed (kind, message, cause chain, backtrace), which attempt, where
-- (file, chunk, rows, worker) and when (queued, read, write, failure), and
-- what the worker did about it (retry later, dead-letter, give up).
CREATE TABLE chunk_failures (
    id                BIGSERIAL PRIMARY KEY,
    chunk_id          BIGINT NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    import_id         UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    file_id           UUID NOT NULL REFERENCES import_files (id) ON DELETE CASCADE,
    organization_id   BIGINT NOT NULL,
    chunk_seq         INT NOT NULL,
    first_row         BIGINT NOT NULL,
    last_row          BIGINT NOT NULL,
    attempt           INT NOT NULL,
    error_kind        TEXT NOT NULL,
    transient         BOOLEAN NOT NULL,
    message           TEXT NOT NULL,
    causes            JSONB NOT NULL DEFAULT '[]',
    backtrace         TEXT NOT NULL DEFAULT '',
    worker_host       TEXT NOT NULL,
    worker_pid        INT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN ('retry_scheduled', 'dead_lettered', 'failed')),
    retry_at          TIMESTAMPTZ,
    queued_at         TIMESTAMPTZ NOT NULL,
    read_started_at   TIMESTAMPTZ,
    write_started_at  TIMESTAMPTZ,
    failed_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX chunk_failures_import ON chunk_failures (import_id, id DESC);
CREATE INDEX chunk_failures_org ON chunk_failures (organization_id, id DESC);

-- Before-images of the records an all-or-nothing (STOP_ON_FIRST_ERROR)
-- import updated, so that a failure or a stop can put them back; records it
-- created are found by their provenance (`source_import_id`). Deleted when
-- the import completes or is rolled back.
CREATE TABLE import_undo (
    import_id     UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    target_table  TEXT NOT NULL,
    row_key       TEXT NOT NULL,
    before        JSONB NOT NULL,
    PRIMARY KEY (import_id, target_table, row_key)
);

-- The source system's own last-modified time of a record, when the file
-- gives one (`source_updated_at`): an older row never overwrites newer data.
ALTER TABLE cases                  ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE case_basic_information ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE case_veterans          ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE case_family_members    ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE case_events            ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE contracts              ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE payments               ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE rolodex_entries        ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE price_list_items       ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE client_service_types   ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE checks                 ADD COLUMN source_updated_at TIMESTAMPTZ;
ALTER TABLE bank_transactions      ADD COLUMN source_updated_at TIMESTAMPTZ;
