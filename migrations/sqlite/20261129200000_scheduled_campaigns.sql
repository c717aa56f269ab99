-- Scheduled sends: a campaign may wait, rendered, for its time
-- (`herald send --at`), or be cancelled before it starts.
--
-- SQLite cannot alter a CHECK constraint, so the table is made anew. Not by
-- the usual rename of a new table over the old one: sqlx runs a migration
-- inside a transaction, where `PRAGMA foreign_keys = OFF` does nothing, and
-- deliveries.campaign_id references this table. Instead every foreign key
-- check is deferred to the commit, the rows are set aside, the table is
-- dropped (its delivery references count as violations) and made again
-- under its own name, and putting the rows back clears every violation
-- before the commit checks them.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE campaigns_before_schedule AS SELECT * FROM campaigns;

DROP TABLE campaigns;

CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY,
    issue_slug    TEXT NOT NULL,
    issue_number  INTEGER NOT NULL,
    -- SHA-256 of the issue file when the campaign began (or was scheduled).
    issue_hash    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    -- The email rendered once, with per-recipient markers: a resumed or
    -- scheduled campaign sends exactly what was rendered when it was made.
    html          TEXT NOT NULL,
    text          TEXT NOT NULL,
    -- scheduled: waiting for scheduled_at, no recipients yet (they are
    -- taken when it starts); cancelled: it never started.
    state         TEXT NOT NULL
        CHECK (state IN ('scheduled', 'sending', 'paused', 'finished', 'cancelled')),
    pause_reason  TEXT,
    -- A deliberate resend (--force-new) retires the campaign before it; a
    -- cancelled campaign is retired too.
    retired       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    -- When it finished, or was cancelled.
    finished_at   INTEGER,
    message_nonce TEXT,
    -- When a scheduled campaign starts (or started); NULL for one sent at once.
    scheduled_at  INTEGER
);

INSERT INTO campaigns (id, issue_slug, issue_number, issue_hash, subject, html, text, state,
                       pause_reason, retired, created_at, finished_at, message_nonce)
SELECT id, issue_slug, issue_number, issue_hash, subject, html, text, state,
       pause_reason, retired, created_at, finished_at, message_nonce
FROM campaigns_before_schedule;

DROP TABLE campaigns_before_schedule;

CREATE INDEX campaigns_by_slug ON campaigns (issue_slug, retired);
CREATE INDEX campaigns_by_message_nonce ON campaigns (message_nonce);
