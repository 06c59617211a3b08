-- mpcpush schema, version 5: the pruner finds the push rows of removed devices through an index.
--
-- The pruner deletes push rows that owe nothing and whose device is gone. It found them with an
-- anti-join of all of pushes against all of devices, every prune interval (60 s by default):
-- with a million devices, 1.4 s of three processes each time. Since schema 4 a push row's
-- fcm_token is NULL exactly when its device does not exist (kept by the triggers), so these
-- rows are the few this partial index holds; rows with a device never enter it, and the
-- dispatcher's updates (which do not change the token) leave it alone.
CREATE INDEX pushes_deviceless ON mpcpush.pushes (wallet_id, device_id) WHERE fcm_token IS NULL;
