-- Room on every page of the target tables for a re-import's new row
-- versions (fillfactor 50): PostgreSQL then writes an updated record on the
-- page it was on (a HOT update) and adds no entry to the primary key or any
-- other index, since no indexed column changes (records are matched by their
-- key; payments' index by contract holds key columns only, and family
-- members' next-of-kin index changes only with that flag). Dead versions are
-- pruned page by page as the pages are next written, so a table re-imported
-- in full stays the size it had instead of growing by a copy of itself each
-- time until autovacuum catches up.
-- Measured in psql on this machine kind, 1M Cases records updated in 40
-- transactions of 25,000 rows from a staging table, four rounds one after
-- another: the UPDATE statements took 5.6–6.6 s in all with fillfactor 50
-- (every update HOT, the table 289 MB throughout) against 12.8–17.6 s with
-- the default 100 (0.1 % HOT, the table 284 → 851 MB); fillfactor 70 gave
-- 8.3–10.7 s (45–66 % HOT). The cost is on the first load: the heap has
-- twice the pages (142 → 289 MB for 1M Cases), and a COPY of 1M records
-- into it took 4.6–6.4 s against 4.0–5.6 s; in `bench`, every row changed
-- loaded in 15.7–17.7 s instead of 20.4–23.5 s. docs/decisions.md "Room for
-- updates on the target tables' pages".
-- Only pages written from now on are filled to half; existing pages keep
-- what they hold.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'cases', 'case_basic_information', 'case_veterans', 'case_family_members',
        'case_events', 'contracts', 'payments', 'rolodex_entries',
        'price_list_items', 'client_service_types', 'checks', 'bank_transactions'
    ] LOOP
        EXECUTE format('ALTER TABLE %I SET (fillfactor = 50)', t);
    END LOOP;
END
$$;
