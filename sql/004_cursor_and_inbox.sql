-- mpcpush schema, version 4: wakeups owed are due at distinct times, and the inbox keeps one
-- index fewer.
--
-- A dispatcher claims in due_at order and keeps a cursor, the due_at where its last claim
-- stopped, so that the next claim starts there instead of walking again past every row still
-- in flight at the head of the queue (src/store/pushes.c). The cursor is only as good as due_at
-- is fine-grained: with now(), every row a statement touches shares the statement's start
-- time, and a claim would walk again past all the in-flight rows of a batch. clock_timestamp()
-- gives each row its own microsecond.
ALTER TABLE mpcpush.pushes ALTER COLUMN due_at SET DEFAULT clock_timestamp();

-- No statement mpcpush runs reads the inbox by wallet, and every webhook paid for this index
-- with an insert at a random place in it (with ten million events, a page written for the
-- first time since the last checkpoint, logged whole). A wallet's events are still found
-- through its messages (messages.event_id), or by scanning the inbox by time.
DROP INDEX mpcpush.webhook_events_wallet;
