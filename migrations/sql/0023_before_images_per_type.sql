-- Before-images of an all-or-nothing import kept as typed rows, one table
-- per import type (`<target table>_undo`: the import, then the record's
-- columns as they were), instead of one JSONB document per record in
-- `import_undo`. Measured in psql per 25,000 updated Cases records on this
-- machine kind: 550–620 ms for the JSONB image (encoding, compression, the
-- text primary key and the foreign key to `imports`), 100–220 ms for the
-- typed row. The first image of a record wins without a unique index: the
-- update images only records the import has not written yet (their
-- provenance names another import), as the primary key did before.
-- No foreign key to `imports`: imports are never deleted, and purging an
-- import's results deletes its images explicitly.
-- Images already kept (an import in flight while this migration runs) move
-- over unchanged, so a rollback after the upgrade still finds them.
-- A later migration that adds a column to a target table adds it to the
-- table's `_undo` table too (the schema test checks they agree).
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'cases', 'case_basic_information', 'case_veterans', 'case_family_members',
        'case_events', 'contracts', 'payments', 'rolodex_entries',
        'price_list_items', 'client_service_types', 'checks', 'bank_transactions'
    ] LOOP
        EXECUTE format('CREATE TABLE %I (import_id UUID NOT NULL, LIKE %I)', t || '_undo', t);
        EXECUTE format('CREATE INDEX %I ON %I (import_id)', t || '_undo_import', t || '_undo');
        EXECUTE format(
            'INSERT INTO %I SELECT u.import_id, (jsonb_populate_record(NULL::%I, u.before)).*
               FROM import_undo u WHERE u.target_table = %L',
            t || '_undo', t, t);
    END LOOP;
END
$$;

DROP TABLE import_undo;
