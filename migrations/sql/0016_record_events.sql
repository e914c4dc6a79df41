-- Record events (docs/record-events.md): the chunk's write transaction adds
-- one row per record it created or updated to this outbox, so an event
-- exists if and only if its write committed. A relay (one worker at a time,
-- under an advisory lock) publishes the rows in id order to the
-- `{prefix}.records` topic exchange with publisher confirms and deletes
-- what the broker confirmed. Events of an all-or-nothing import are held
-- until it completes, and dropped when it is rolled back: consumers never
-- see a write that was undone.
CREATE TABLE record_events (
    id              BIGSERIAL PRIMARY KEY,
    event_id        UUID NOT NULL UNIQUE,
    organization_id BIGINT NOT NULL,
    import_id       UUID NOT NULL,
    file_id         UUID NOT NULL,
    row_number      BIGINT NOT NULL,
    attempt         INT NOT NULL,
    import_type     TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('created', 'updated')),
    -- The record's natural key, one value per key column.
    record_key      JSONB NOT NULL,
    -- The changed columns with their new values (null when emptied);
    -- sensitive values masked.
    changes         JSONB NOT NULL,
    held            BOOLEAN NOT NULL DEFAULT false,
    committed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX record_events_ready ON record_events (id) WHERE NOT held;
CREATE INDEX record_events_import ON record_events (import_id);
