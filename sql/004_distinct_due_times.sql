-- mpcpush schema, version 4: wakeups owed are due at distinct times.
--
-- A dispatcher claims in due_at order and keeps a cursor, the due_at where its last claim
-- stopped, so that the next claim starts there instead of walking again past every row still
-- in flight at the head of the queue (src/store/pushes.c). The cursor is only as good as due_at
-- is fine-grained: with now(), every row a statement touches shares the statement's start
-- time, and a claim would walk again past all the in-flight rows of a batch. clock_timestamp()
-- gives each row its own microsecond.

ALTER TABLE mpcpush.pushes ALTER COLUMN due_at SET DEFAULT clock_timestamp();
