-- Record events (docs/record-events.md): the chunk's write transaction adds
-- to this outbox one row per outcome (created, updated) holding the encoded
-- `RecordEventBatch` of the records it wrote, so events exist if and only if
-- their write committed. A relay (one worker at a time, under an advisory
-- lock) publishes the rows in id order to the `{prefix}.records` topic
-- exchange with publisher confirms and deletes what the broker confirmed.
-- Events of an all-or-nothing import are held until it completes, and
-- dropped when it is rolled back: consumers never see a write that was
-- undone.
CREATE TABLE record_events (
    id              BIGSERIAL PRIMARY KEY,
    batch_id        UUID NOT NULL UNIQUE,
    organization_id BIGINT NOT NULL,
    import_id       UUID NOT NULL,
    import_type     TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('created', 'updated')),
    -- Records in the batch.
    events          INT NOT NULL,
    -- The encoded passare.imports.events.v1.RecordEventBatch.
    payload         BYTEA NOT NULL,
    held            BOOLEAN NOT NULL DEFAULT false,
    committed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Batches are written once, read once and deleted: kept out of line without
-- compression, which would cost the chunk's write more than it saves.
ALTER TABLE record_events ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE INDEX record_events_ready ON record_events (id) WHERE NOT held;
CREATE INDEX record_events_import ON record_events (import_id);
