-- A hash of each record's imported values (docs/re-imports.md): a re-import
-- looks up a chunk's keys with their stored hashes and leaves rows whose hash
-- matches alone without staging or comparing their columns. The service sets
-- the hash whenever it writes a record's values (COPY of a new record, the
-- update of a changed one, a rollback's before-image). NULL means "not known":
-- such a record is compared column by column, and gets a hash when it next
-- changes. Any other UPDATE that leaves row_hash as it was clears it (the
-- trigger), so a record changed outside the import path can never be taken
-- for unchanged on the strength of an out-of-date hash.
CREATE FUNCTION passare_clear_row_hash() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.row_hash := NULL;
    RETURN NEW;
END $$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'cases', 'case_basic_information', 'case_veterans', 'case_family_members',
        'case_events', 'contracts', 'payments', 'rolodex_entries', 'price_list_items',
        'client_service_types', 'checks', 'bank_transactions'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN row_hash BIGINT', t);
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW
               WHEN (OLD.row_hash IS NOT NULL AND NEW.row_hash IS NOT DISTINCT FROM OLD.row_hash)
               EXECUTE FUNCTION passare_clear_row_hash()',
            t || '_row_hash_cleared', t);
    END LOOP;
END $$;
