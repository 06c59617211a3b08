-- Scenario 5: the indexes and unique constraints of the tables the older rows go into are
-- dropped before the load and built again after it (a sorted build is many times faster than
-- ten million single inserts). Their definitions are read from the catalog, so the load follows
-- the schema wherever it goes. psql -v action=drop|create -v tables=messages,webhook_events
-- (create takes -v part=constraints|indexes and -v table=NAME to build one table's at a time).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS bench.saved_indexes (
    tbl text NOT NULL, name text NOT NULL, is_constraint bool NOT NULL, def text NOT NULL,
    PRIMARY KEY (tbl, name));
SELECT :'action' = 'drop' AS dropping \gset
\if :dropping
BEGIN;
DELETE FROM bench.saved_indexes WHERE tbl = ANY (string_to_array(:'tables', ','));
INSERT INTO bench.saved_indexes
SELECT c.conrelid::regclass::text, c.conname, true,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid))
FROM pg_constraint c
WHERE c.contype IN ('p', 'u') AND c.conrelid = ANY (
    SELECT ('mpcpush.' || t)::regclass FROM unnest(string_to_array(:'tables', ',')) t);
INSERT INTO bench.saved_indexes
SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, false,
       pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid = ANY (
    SELECT ('mpcpush.' || t)::regclass FROM unnest(string_to_array(:'tables', ',')) t)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
UPDATE bench.saved_indexes SET tbl = regexp_replace(tbl, '^mpcpush\.', '');
SELECT format('DROP INDEX %s', name) FROM bench.saved_indexes
WHERE NOT is_constraint AND tbl = ANY (string_to_array(:'tables', ',')) \gexec
SELECT format('ALTER TABLE mpcpush.%I DROP CONSTRAINT %I', tbl, name) FROM bench.saved_indexes
WHERE is_constraint AND tbl = ANY (string_to_array(:'tables', ',')) \gexec
COMMIT;
\else
SET maintenance_work_mem = '1GB';
SET max_parallel_maintenance_workers = 0;
SELECT def FROM bench.saved_indexes
WHERE tbl = :'table' AND is_constraint = (:'part' = 'constraints') ORDER BY name \gexec
\endif
