-- Resumable uploads: a browser (or any client on a flaky network) sends a
-- file in parts over unary calls. The upload's state lives here and its
-- parts in storage, so any server or gateway replica can take any part and
-- a restarted process loses nothing.

CREATE TABLE uploads (
    id                UUID PRIMARY KEY,
    import_id         UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    organization_id   BIGINT NOT NULL,
    request_id        UUID,
    created_by_id     TEXT NOT NULL,
    created_by_name   TEXT NOT NULL,
    created_by_email  TEXT NOT NULL,
    file_name         TEXT NOT NULL,
    import_type       TEXT NOT NULL,
    declared_size     BIGINT NOT NULL CHECK (declared_size > 0),
    declared_sha256   TEXT,
    -- How to read the file, as the header said: {"encoding", "sheet", "delimiter", "mapping"}.
    reading           JSONB NOT NULL DEFAULT '{}',
    -- Bytes stored so far, in order, without a gap: the offset of the next part.
    committed_bytes   BIGINT NOT NULL DEFAULT 0 CHECK (committed_bytes >= 0 AND committed_bytes <= declared_size),
    state             TEXT NOT NULL CHECK (state IN ('active', 'completing', 'completed', 'aborted', 'expired')),
    -- Why an upload ended without a file (aborted by its client, or refused at completion).
    end_reason        TEXT,
    file_id           UUID,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- An active upload that receives nothing until then expires.
    expires_at        TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX uploads_request ON uploads (created_by_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX uploads_import ON uploads (import_id);
CREATE INDEX uploads_user_active ON uploads (created_by_id) WHERE state IN ('active', 'completing');
CREATE INDEX uploads_expiring ON uploads (expires_at) WHERE state IN ('active', 'completing');

-- The parts of an upload, each stored as an object of its own; together,
-- in offset order, they are the file.
CREATE TABLE upload_parts (
    upload_id     UUID NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    offset_bytes  BIGINT NOT NULL,
    length        BIGINT NOT NULL CHECK (length > 0),
    storage_key   TEXT NOT NULL,
    PRIMARY KEY (upload_id, offset_bytes)
);
