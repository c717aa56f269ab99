-- Subscribers and their double opt-in. Times are Unix milliseconds (UTC).

CREATE TABLE subscribers (
    id                 INTEGER PRIMARY KEY,
    -- Normalised (trimmed, lowercased) by SubscriberEmail::parse.
    email              TEXT NOT NULL UNIQUE,
    name               TEXT,
    state              TEXT NOT NULL
        CHECK (state IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
    source             TEXT NOT NULL CHECK (source IN ('form', 'import', 'cli')),
    -- Random, unguessable, valid forever: the one-click unsubscribe link.
    unsubscribe_token  TEXT NOT NULL UNIQUE,
    consent_at         INTEGER,
    consent_ip         TEXT,
    consent_user_agent TEXT,
    created_at         INTEGER NOT NULL,
    state_changed_at   INTEGER NOT NULL
);

CREATE INDEX subscribers_by_state ON subscribers (state, id);

-- Every change of state, with why: the audit trail behind consent.
CREATE TABLE subscriber_events (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    state         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    at            INTEGER NOT NULL
);

CREATE INDEX subscriber_events_by_subscriber ON subscriber_events (subscriber_id, at);

-- Only the SHA-256 of a confirmation token is kept: a leaked database
-- confirms nobody.
CREATE TABLE confirmation_tokens (
    token_hash    BLOB PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);

CREATE INDEX confirmation_tokens_by_subscriber ON confirmation_tokens (subscriber_id, created_at);

-- Addresses erased on request stay suppressed, known only by their hash.
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    at         INTEGER NOT NULL
);
