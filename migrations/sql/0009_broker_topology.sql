-- The broker's topology no longer grows with the organizations: notices on
-- one shared queue instead of a queue per organization. A worker that finds
-- no row here for its queue prefix moves the broker over once (announces
-- every organization with work waiting, deletes the old queues) and records
-- it, so later starts skip the work.
CREATE TABLE broker_topology (
    queue_prefix     TEXT PRIMARY KEY,
    -- 2: `{prefix}.notices` and `{prefix}.dead` only.
    version          INT NOT NULL,
    migrated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Organizations whose old queues were deleted, and the messages that
    -- went with them (wake-ups; the chunks are rows of `chunks`).
    organizations    BIGINT NOT NULL,
    legacy_messages  BIGINT NOT NULL
);
