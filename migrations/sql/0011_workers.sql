-- Live workers for the queue monitor (docs/monitoring.md).

-- One row per worker process, written every IMPORTS_WORKER_HEARTBEAT_SECS;
-- a row whose `expires_at` (last heartbeat + IMPORTS_WORKER_HEARTBEAT_EXPIRY_SECS)
-- has passed is a dead worker: readers ignore it and the next heartbeat of
-- any worker deletes it.
CREATE TABLE workers (
    name          TEXT PRIMARY KEY,          -- host:pid, as in chunks.worker
    host          TEXT NOT NULL,
    pid           INT NOT NULL,
    slots         INT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    heartbeat_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

-- Who drains each organization and which chunk it is loading, since when:
-- written when a worker takes an organization's drain lease and before each
-- chunk, deleted when it releases the lease. A row left by a worker that
-- died (no live heartbeat) or whose chunk outlasted its time limit is
-- stalled work; the next worker to take the lease overwrites it.
CREATE TABLE drains (
    organization_id   BIGINT PRIMARY KEY REFERENCES organizations (id),
    worker            TEXT NOT NULL,
    drain_started_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    chunk_id          BIGINT,
    chunk_started_at  TIMESTAMPTZ
);

-- The monitor's throughput: rows of the chunks finished in the last minutes.
CREATE INDEX chunks_finished ON chunks (finished_at) WHERE finished_at IS NOT NULL;
-- The monitor's last activity per organization.
CREATE INDEX chunks_org_finished ON chunks (organization_id, finished_at);
