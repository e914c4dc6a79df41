-- The raw archive (docs/archive.md): the rows of every loaded chunk are
-- written as Parquet to the archive location, and each file's original
-- bytes beside them. Archiving never blocks a load: the chunk's write marks
-- it due (`archive_due`), the worker archives it right after the commit and
-- clears the mark; a worker that died meanwhile, or an archive write that
-- failed, leaves the mark, and any worker's archive runner takes it when it
-- comes due (failures back off, `archive_attempts` and `archive_error` show
-- why on the import). A chunk of an all-or-nothing import that was rolled
-- back is due again so its archived rows are deleted.
ALTER TABLE chunks
    ADD COLUMN archive_due      TIMESTAMPTZ,
    ADD COLUMN archived_at      TIMESTAMPTZ,
    ADD COLUMN archive_attempts INT NOT NULL DEFAULT 0,
    ADD COLUMN archive_error    TEXT;
CREATE INDEX chunks_archive_due ON chunks (archive_due) WHERE archive_due IS NOT NULL;

ALTER TABLE import_files
    ADD COLUMN original_archive_due      TIMESTAMPTZ,
    ADD COLUMN original_archived_at      TIMESTAMPTZ,
    ADD COLUMN original_archive_attempts INT NOT NULL DEFAULT 0,
    ADD COLUMN original_archive_error    TEXT;
CREATE INDEX import_files_original_archive_due ON import_files (original_archive_due)
    WHERE original_archive_due IS NOT NULL;
