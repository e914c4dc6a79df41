-- An all-or-nothing import that fails or is stopped after writing is rolled
-- back by the workers in batches, each its own transaction behind the
-- organization's write fence, until nothing of it remains: `rolling_back`
-- until then, then `failed` or `stopped` (a stop records `stopped_by_id`).
ALTER TABLE imports DROP CONSTRAINT imports_state_check;
ALTER TABLE imports ADD CONSTRAINT imports_state_check
    CHECK (state IN ('draft', 'queued', 'running', 'completed', 'completed_with_errors',
                     'failed', 'stopped', 'rolling_back'));

ALTER TABLE imports
    -- When the rollback began.
    ADD COLUMN rollback_started_at     TIMESTAMPTZ,
    -- Records put back so far (before-images restored, created records deleted).
    ADD COLUMN rollback_records_done   BIGINT NOT NULL DEFAULT 0,
    -- Records the import wrote, which the rollback puts back.
    ADD COLUMN rollback_records_total  BIGINT NOT NULL DEFAULT 0;

-- The workers' sweep looks for organizations with an import rolling back.
CREATE INDEX imports_rolling_back ON imports (organization_id) WHERE state = 'rolling_back';
