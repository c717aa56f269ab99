-- One campaign per send of an issue; one delivery per recipient and message.

CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY,
    issue_slug    TEXT NOT NULL,
    issue_number  INTEGER NOT NULL,
    -- SHA-256 of the issue file when the campaign began.
    issue_hash    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    -- The email rendered once, with per-recipient markers: a resumed
    -- campaign sends exactly what the first run rendered.
    html          TEXT NOT NULL,
    text          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('sending', 'paused', 'finished')),
    pause_reason  TEXT,
    -- A deliberate resend (--force-new) retires the campaign before it.
    retired       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);

CREATE INDEX campaigns_by_slug ON campaigns (issue_slug, retired);

-- The durable queue. Issue mail rows point at their campaign and build the
-- message from it; transactional mail (confirmations) carries its finished
-- message in `payload`. Both share states, leases and retries.
CREATE TABLE deliveries (
    id                 INTEGER PRIMARY KEY,
    campaign_id        INTEGER REFERENCES campaigns (id),
    subscriber_id      INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('issue', 'confirmation', 'welcome')),
    recipient          TEXT NOT NULL,
    payload            BLOB,
    -- skipped: the subscriber left the list before their copy went out.
    state              TEXT NOT NULL
        CHECK (state IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'skipped')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL,
    -- A claimed row belongs to its worker until then; after, anyone's.
    lease_until        INTEGER,
    first_attempt_at   INTEGER,
    last_code          INTEGER,
    last_enhanced_code TEXT,
    last_reply         TEXT,
    message_id         TEXT NOT NULL,
    sent_at            INTEGER,
    created_at         INTEGER NOT NULL,
    UNIQUE (campaign_id, subscriber_id)
);

CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_campaign ON deliveries (campaign_id, state);
