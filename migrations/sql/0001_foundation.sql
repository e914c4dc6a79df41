-- Foundation of Passare Imports: organization setup read by the service,
-- the import bookkeeping tables, and the Cases target table.

-- Organization setup. Managed by Passare; the service reads it to check
-- prerequisites and resolve references, and creates it only for demos and tests.
CREATE TABLE organizations (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE locations (
    id               BIGSERIAL PRIMARY KEY,
    organization_id  BIGINT NOT NULL REFERENCES organizations (id),
    name             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX locations_org_name ON locations (organization_id, lower(name));

CREATE TABLE staff_users (
    id               BIGSERIAL PRIMARY KEY,
    organization_id  BIGINT NOT NULL REFERENCES organizations (id),
    email            TEXT NOT NULL,
    name             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX staff_users_org_email ON staff_users (organization_id, lower(email));

-- Imports. `queue_seq` orders the imports of an organization by the time they
-- were started; workers load them strictly in that order.
CREATE SEQUENCE import_queue_seq;

CREATE TABLE imports (
    id                  UUID PRIMARY KEY,
    organization_id     BIGINT NOT NULL REFERENCES organizations (id),
    state               TEXT NOT NULL CHECK (state IN ('draft', 'queued', 'running', 'completed',
                                                       'completed_with_errors', 'failed', 'stopped')),
    failure_policy      TEXT NOT NULL CHECK (failure_policy IN ('stop_on_first_error', 'import_valid_rows')),
    note                TEXT NOT NULL DEFAULT '',
    request_id          UUID,
    requested_by_id     TEXT NOT NULL,
    requested_by_name   TEXT NOT NULL,
    requested_by_email  TEXT NOT NULL,
    queue_seq           BIGINT,
    error               JSONB,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    queued_at           TIMESTAMPTZ,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX imports_request_id ON imports (requested_by_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX imports_newest ON imports (created_at DESC, id DESC);
CREATE INDEX imports_org_newest ON imports (organization_id, created_at DESC, id DESC);
CREATE INDEX imports_org_queue ON imports (organization_id, queue_seq) WHERE state IN ('queued', 'running');

CREATE TABLE import_files (
    id              UUID PRIMARY KEY,
    import_id       UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    organization_id BIGINT NOT NULL REFERENCES organizations (id),
    position        INT NOT NULL,
    import_type     TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    storage_key     TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    format          TEXT NOT NULL,
    delimiter       TEXT NOT NULL,
    headers         JSONB NOT NULL DEFAULT '[]',
    row_count       BIGINT NOT NULL DEFAULT 0,
    -- Byte ranges of the file's chunks: [{"seq":0,"first_row":1,"rows":5000,"start":123,"end":456}, ...]
    chunk_plan      JSONB NOT NULL DEFAULT '[]',
    state           TEXT NOT NULL CHECK (state IN ('ready', 'invalid', 'queued', 'running', 'completed',
                                                   'completed_with_errors', 'failed')),
    problems        JSONB NOT NULL DEFAULT '[]',
    chunks_total    INT NOT NULL DEFAULT 0,
    chunks_done     INT NOT NULL DEFAULT 0,
    rows_processed  BIGINT NOT NULL DEFAULT 0,
    rows_created    BIGINT NOT NULL DEFAULT 0,
    rows_updated    BIGINT NOT NULL DEFAULT 0,
    rows_unchanged  BIGINT NOT NULL DEFAULT 0,
    rows_failed     BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (import_id, position)
);

-- One row per chunk of a file. A chunk is written by exactly one transaction,
-- which also marks it done: a redelivered chunk finds it done and has no effect.
-- `started_at`/`finished_at` bound the time a worker held the chunk; for one
-- organization these intervals never overlap.
CREATE TABLE chunks (
    id                BIGSERIAL PRIMARY KEY,
    import_id         UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    file_id           UUID NOT NULL REFERENCES import_files (id) ON DELETE CASCADE,
    organization_id   BIGINT NOT NULL REFERENCES organizations (id),
    seq               INT NOT NULL,
    first_row         BIGINT NOT NULL,
    row_count         BIGINT NOT NULL,
    byte_start        BIGINT NOT NULL,
    byte_end          BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('queued', 'done', 'failed', 'skipped')),
    attempts          INT NOT NULL DEFAULT 0,
    worker            TEXT,
    rows_created      BIGINT NOT NULL DEFAULT 0,
    rows_updated      BIGINT NOT NULL DEFAULT 0,
    rows_unchanged    BIGINT NOT NULL DEFAULT 0,
    rows_failed       BIGINT NOT NULL DEFAULT 0,
    queued_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    write_started_at  TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    UNIQUE (file_id, seq)
);
CREATE INDEX chunks_org_pending ON chunks (organization_id, id) WHERE state = 'queued';
CREATE INDEX chunks_import ON chunks (import_id, file_id, seq);

CREATE TABLE row_errors (
    id           BIGSERIAL PRIMARY KEY,
    import_id    UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    file_id      UUID NOT NULL REFERENCES import_files (id) ON DELETE CASCADE,
    chunk_id     BIGINT REFERENCES chunks (id) ON DELETE CASCADE,
    row_number   BIGINT NOT NULL,
    column_name  TEXT NOT NULL DEFAULT '',
    value        TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX row_errors_file_row ON row_errors (file_id, row_number);

-- Target: Cases. Keyed by (organization, case_number); every record knows the
-- import, file and row that last wrote it. The loader resolves location and
-- director within the organization itself and writes behind the
-- organization's fence, so the target tables carry no foreign keys: checking
-- three per row would double the cost of a bulk load (see docs/decisions.md).
CREATE TABLE cases (
    organization_id       BIGINT NOT NULL,
    case_number           TEXT NOT NULL,
    deceased_first_name   TEXT NOT NULL,
    deceased_middle_name  TEXT,
    deceased_last_name    TEXT NOT NULL,
    suffix                TEXT,
    date_of_birth         DATE,
    date_of_death         DATE,
    case_type             TEXT,
    case_status           TEXT,
    disposition           TEXT,
    location_id           BIGINT,
    director_user_id      BIGINT,
    opened_on             DATE,
    source_import_id      UUID,
    source_file_id        UUID,
    source_row            BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, case_number)
);
