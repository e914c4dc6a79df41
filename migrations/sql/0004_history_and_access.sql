-- History, row-level results, fixing and retrying failed rows, the audit
-- trail and retention.

-- Every step of an import, with who took it (NULL actor: the service).
CREATE TABLE import_events (
    id           BIGSERIAL PRIMARY KEY,
    import_id    UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    actor_id     TEXT,
    actor_name   TEXT,
    actor_email  TEXT,
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX import_events_import ON import_events (import_id, id);

-- Every state-changing call. Kept when an import's results are purged.
CREATE TABLE audit_events (
    id               BIGSERIAL PRIMARY KEY,
    at               TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    actor_id         TEXT NOT NULL,
    actor_name       TEXT NOT NULL,
    actor_email      TEXT NOT NULL,
    action           TEXT NOT NULL,
    organization_id  BIGINT,
    import_id        UUID,
    request_id       TEXT NOT NULL DEFAULT '',
    details          JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_org ON audit_events (organization_id, id DESC);
CREATE INDEX audit_events_import ON audit_events (import_id, id DESC);
CREATE INDEX audit_events_actor ON audit_events (actor_id, id DESC);

-- Retries of failed rows: an import runs again as attempt 2, 3, …; a row
-- error belongs to the attempt that found it and is superseded when a later
-- attempt tries its row again.
ALTER TABLE imports
    ADD COLUMN attempt           INT NOT NULL DEFAULT 1,
    ADD COLUMN results_purged_at TIMESTAMPTZ;
ALTER TABLE row_errors
    ADD COLUMN attempt        INT NOT NULL DEFAULT 1,
    ADD COLUMN superseded_at  TIMESTAMPTZ;
CREATE INDEX row_errors_open ON row_errors (import_id, file_id, row_number) WHERE superseded_at IS NULL;

-- A retry's chunks read the rows to try again from a file of their own
-- (`data_key`, with the original header), and `row_numbers` gives each of
-- its records the row number it has in the original file.
ALTER TABLE chunks
    ADD COLUMN attempt      INT NOT NULL DEFAULT 1,
    ADD COLUMN data_key     TEXT,
    ADD COLUMN row_numbers  BIGINT[];

-- Cells of failed rows set by UpdateRows or a corrected file, applied when
-- the rows are retried.
CREATE TABLE row_edits (
    file_id          UUID NOT NULL REFERENCES import_files (id) ON DELETE CASCADE,
    import_id        UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_number       BIGINT NOT NULL,
    column_name      TEXT NOT NULL,
    value            TEXT NOT NULL,
    edited_by_id     TEXT NOT NULL,
    edited_at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (file_id, row_number, column_name)
);

-- Finding imports by organization and time, type and requester.
CREATE INDEX imports_requester ON imports (requested_by_id, created_at DESC, id DESC);
CREATE INDEX imports_requester_email ON imports (lower(requested_by_email), created_at DESC, id DESC);
CREATE INDEX import_files_type ON import_files (import_type, import_id);
-- Retention: imports finished long ago whose results are still stored.
CREATE INDEX imports_to_purge ON imports (finished_at) WHERE results_purged_at IS NULL;
CREATE INDEX organizations_name ON organizations (lower(name), id);
