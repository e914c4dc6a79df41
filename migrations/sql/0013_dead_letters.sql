-- Dead letters (docs/monitoring.md): every chunk a worker gave up on — its
-- retries ran out, or it failed for a reason no retry cures — waits here,
-- beside its copy in the broker's `{prefix}.dead` queue, until an operator
-- requeues it (its rows run again as the import's next attempt) or
-- discards it (its rows stay failed). Written in the transaction that
-- gives the chunk up, so the list is exactly the chunks given up.
CREATE TABLE dead_letters (
    chunk_id          BIGINT PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    -- The attempt that gave it up.
    failure_id        BIGINT NOT NULL REFERENCES chunk_failures (id) ON DELETE CASCADE,
    import_id         UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    organization_id   BIGINT NOT NULL,
    dead_at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    resolution        TEXT CHECK (resolution IN ('requeued', 'discarded')),
    resolved_at       TIMESTAMPTZ,
    resolved_by_id    TEXT,
    resolved_by_name  TEXT,
    resolved_by_email TEXT,
    -- Why it was discarded, or the attempt it was requeued into.
    resolution_note   TEXT NOT NULL DEFAULT '',
    requeued_attempt  INT
);
CREATE INDEX dead_letters_open ON dead_letters (organization_id, chunk_id) WHERE resolution IS NULL;

-- Chunks given up before this table existed.
INSERT INTO dead_letters (chunk_id, failure_id, import_id, organization_id, dead_at)
SELECT DISTINCT ON (f.chunk_id) f.chunk_id, f.id, f.import_id, f.organization_id, f.failed_at
  FROM chunk_failures f JOIN chunks c ON c.id = f.chunk_id
 WHERE c.state = 'failed' AND f.outcome IN ('dead_lettered', 'failed')
 ORDER BY f.chunk_id, f.id DESC;
