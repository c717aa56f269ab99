-- Bounces and complaints: what happened after the hand-off.

-- Small secrets Herald makes for itself (the VERP key): random bytes
-- created on first use, never configured, never printed.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Every report received, matched or not: nothing is dropped.
CREATE TABLE bounce_reports (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('pipe', 'import', 'imap', 'webhook')),
    provider    TEXT CHECK (provider IN ('ses', 'mailgun', 'sendgrid', 'postmark', 'generic')),
    kind        TEXT NOT NULL
        CHECK (kind IN ('bounce', 'complaint', 'auto-reply', 'delay', 'none')),
    -- 'sha256:<hex of the raw message>' for mail, '<provider>:<event id>'
    -- for a webhook event: the same report recorded twice changes nothing.
    dedupe_key  TEXT NOT NULL UNIQUE,
    -- The parse result (ParsedReport) as JSON.
    parsed      TEXT NOT NULL,
    -- The raw message or event; emptied after [bounces] keep_days.
    raw         BLOB,
    matched     INTEGER NOT NULL,
    unmatched   INTEGER NOT NULL
);

CREATE INDEX bounce_reports_by_time ON bounce_reports (received_at);
-- Only rows still holding their raw message: the prune visits just those,
-- however many old reports have been emptied before.
CREATE INDEX bounce_reports_raw_kept ON bounce_reports (received_at) WHERE raw IS NOT NULL;

-- One row per recipient a report names, with what it matched (or NULLs:
-- an unmatched recipient is kept all the same).
CREATE TABLE bounce_recipients (
    id            INTEGER PRIMARY KEY,
    report_id     INTEGER NOT NULL REFERENCES bounce_reports (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL
        CHECK (kind IN ('bounce', 'complaint', 'auto-reply', 'delay', 'none')),
    address       TEXT NOT NULL,
    status        TEXT,
    class         TEXT NOT NULL CHECK (class IN ('hard', 'soft')),
    diagnostic    TEXT NOT NULL,
    matched_by    TEXT CHECK (matched_by IN ('verp', 'message-id', 'address')),
    delivery_id   INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
    subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
    at            INTEGER NOT NULL
);

CREATE INDEX bounce_recipients_by_report ON bounce_recipients (report_id);
-- The soft-bounce count of one subscriber within a window.
CREATE INDEX bounce_recipients_by_subscriber ON bounce_recipients (subscriber_id, kind, at);
-- ON DELETE SET NULL from deliveries would otherwise scan this table.
CREATE INDEX bounce_recipients_by_delivery ON bounce_recipients (delivery_id);

-- What a delivery's reports said, the gravest kept (complaint, then hard
-- bounce, soft bounce, delay).
ALTER TABLE deliveries ADD COLUMN report_kind TEXT
    CHECK (report_kind IN ('bounce', 'complaint', 'auto-reply', 'delay'));
ALTER TABLE deliveries ADD COLUMN report_class TEXT CHECK (report_class IN ('hard', 'soft'));
ALTER TABLE deliveries ADD COLUMN report_status TEXT;
ALTER TABLE deliveries ADD COLUMN report_diagnostic TEXT;
ALTER TABLE deliveries ADD COLUMN reported_at INTEGER;

-- A campaign's bounce and complaint counts for `herald status`. Partial: a
-- snapshot inserts only rows without a report, which never enter it, so it
-- costs a send nothing and stays as small as the reports are few.
CREATE INDEX deliveries_reported ON deliveries (campaign_id, report_kind, report_class)
    WHERE report_kind IS NOT NULL;

-- The per-campaign part of campaign Message-IDs
-- (<herald.NONCE.SUBSCRIBER@domain>): a returned Message-ID finds its
-- delivery through the campaign and the UNIQUE (campaign_id,
-- subscriber_id) index, with no index on deliveries.message_id.
ALTER TABLE campaigns ADD COLUMN message_nonce TEXT;
UPDATE campaigns SET message_nonce = (
    SELECT substr(d.message_id, 9, 32) FROM deliveries d
    WHERE d.campaign_id = campaigns.id AND d.message_id LIKE '<herald.%' LIMIT 1);
CREATE INDEX campaigns_by_message_nonce ON campaigns (message_nonce);

-- Transactional mail (confirmations, welcomes) is found by its whole
-- Message-ID; partial, so campaign rows never enter this index.
CREATE INDEX deliveries_transactional_by_message_id ON deliveries (message_id)
    WHERE campaign_id IS NULL;
