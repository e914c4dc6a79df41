-- Saved import profiles (docs/transform-rules.md): a source system's header
-- mapping and transform rules for one import type, for every organization
-- (organization_id NULL: a vendor preset) or one. Every change is a new
-- version; versions are never changed, so an import records the version it
-- used and that version can always be read again.
CREATE TABLE import_profiles (
    id              UUID PRIMARY KEY,
    organization_id BIGINT,
    import_type     TEXT NOT NULL,
    name            TEXT NOT NULL,
    latest_version  INT NOT NULL DEFAULT 1,
    -- The create call's request id: a retry returns the same profile.
    request_id      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at      TIMESTAMPTZ
);
CREATE UNIQUE INDEX import_profiles_name
    ON import_profiles (COALESCE(organization_id, 0), import_type, lower(name))
    WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX import_profiles_request ON import_profiles (request_id);

CREATE TABLE import_profile_versions (
    profile_id      UUID NOT NULL REFERENCES import_profiles (id),
    version         INT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    -- [[file header, column], …]
    column_mapping  JSONB NOT NULL DEFAULT '[]',
    -- The source system's headers the rules read and suggestions match.
    source_headers  JSONB NOT NULL DEFAULT '[]',
    rules           JSONB NOT NULL DEFAULT '[]',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by_id   TEXT NOT NULL,
    created_by_name TEXT NOT NULL DEFAULT '',
    created_by_email TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (profile_id, version)
);

-- The profile version a file is read with (domain::transform::AppliedProfile),
-- copied onto the file so analysis and load use exactly the same one. A new
-- version replaces it on files of imports not yet started, which makes
-- their analysis stale.
ALTER TABLE import_files ADD COLUMN profile_id UUID REFERENCES import_profiles (id);
ALTER TABLE import_files ADD COLUMN profile JSONB;
CREATE INDEX import_files_profile ON import_files (profile_id) WHERE profile_id IS NOT NULL;
