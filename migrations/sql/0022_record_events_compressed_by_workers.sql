-- Record event batches compressed by the worker that writes them, LZ4 like
-- 0019 but outside PostgreSQL (docs/record-events.md): a 25,000-row chunk's
-- created events are about 13 MB of protobuf, and PostgreSQL compressing
-- them in the write transaction, and decompressing them for the relay, took
-- about a third of the events' cost. The worker compresses them on a
-- blocking thread beside the chunk's COPY, and the relay decompresses them
-- before publishing; the column stores the bytes as they come.
-- Batches written before this migration keep 'protobuf' (stored as encoded).
ALTER TABLE record_events
    ADD COLUMN encoding TEXT NOT NULL DEFAULT 'protobuf'
        CHECK (encoding IN ('protobuf', 'lz4'));
ALTER TABLE record_events ALTER COLUMN payload SET STORAGE EXTERNAL;
