-- What the webhook endpoints have accepted, so that a replayed request is
-- refused. Kept in the database, not in memory, so that several `herald
-- serve` front ends behind one load balancer refuse the same replays.
--
-- replay_key is "provider:" + the SHA-256 (hex) of what makes a request
-- unique (a signature, a token, a message id): fixed length, and no text
-- from a payload is stored here. A row is needed only while the request it
-- stands for would still be accepted; after expires_at the request is stale
-- anyway, and the row is deleted.
CREATE TABLE webhook_replays (
    replay_key TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX webhook_replays_by_expiry ON webhook_replays (expires_at);
