-- Counters for the dashboard and /metrics, kept by triggers as rows change,
-- so that a page view or a scrape reads a handful of rows instead of
-- scanning a million deliveries or subscribers. The PostgreSQL migration of
-- the same name keeps the same tables with statement-level triggers.
--
-- SQLite runs row triggers: each changed row adds and takes away one. They
-- also fire for the foreign key actions (ON DELETE CASCADE, SET NULL), so
-- an erase keeps the counts exact too.

-- Deliveries by queue, kind and state. campaign_key is the campaign id,
-- or 0 for transactional mail (confirmations, welcomes), which has none:
-- a primary key column cannot be NULL.
CREATE TABLE delivery_counts (
    campaign_key INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (campaign_key, kind, state)
) WITHOUT ROWID;

-- Subscribers by state and source: by state is the sum over sources, and
-- the other way round (fifteen rows at most).
CREATE TABLE subscriber_counts (
    state  TEXT NOT NULL,
    source TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (state, source)
) WITHOUT ROWID;

-- subscriber_events per week (week_start: Monday 00:00 UTC, Unix ms) and
-- state: the growth chart.
CREATE TABLE subscriber_event_weeks (
    week_start INTEGER NOT NULL,
    state      TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (week_start, state)
) WITHOUT ROWID;

-- Totals that only ever grow, for Prometheus counters (rate() needs a
-- counter that never goes down): 'signups' (subscribers inserted),
-- 'replies_2xx' / '_4xx' / '_5xx' / '_other' (the SMTP reply that ended an
-- attempt), 'bounces_hard', 'bounces_soft', 'complaints' (report
-- recipients). An erase does not take them back.
CREATE TABLE metric_totals (
    name TEXT PRIMARY KEY NOT NULL,
    n    INTEGER NOT NULL
) WITHOUT ROWID;

-- Monday 1970-01-05 is 345,600,000 ms after the epoch; a week is
-- 604,800,000 ms. Times before 1970-01-05 do not occur.

-- Deliveries.
CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries
BEGIN
    INSERT INTO delivery_counts (campaign_key, kind, state, n)
    VALUES (COALESCE(NEW.campaign_id, 0), NEW.kind, NEW.state, 1)
    ON CONFLICT (campaign_key, kind, state) DO UPDATE SET n = n + 1;
    -- A row that arrives with its reply already (a copied history) counts it once.
    INSERT INTO metric_totals (name, n)
    SELECT 'replies_' || CASE NEW.last_code / 100 WHEN 2 THEN '2xx' WHEN 4 THEN '4xx'
                                                  WHEN 5 THEN '5xx' ELSE 'other' END, 1
    WHERE NEW.last_code IS NOT NULL AND NEW.state IN ('sent', 'deferred', 'failed')
    ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries
BEGIN
    UPDATE delivery_counts SET n = n - 1
    WHERE campaign_key = COALESCE(OLD.campaign_id, 0) AND kind = OLD.kind AND state = OLD.state;
END;

-- Only when a counted column changes: a lease renewal or a report on a
-- delivery costs nothing here.
CREATE TRIGGER delivery_counts_update AFTER UPDATE OF campaign_id, kind, state ON deliveries
WHEN OLD.state IS NOT NEW.state OR OLD.kind IS NOT NEW.kind
     OR OLD.campaign_id IS NOT NEW.campaign_id
BEGIN
    UPDATE delivery_counts SET n = n - 1
    WHERE campaign_key = COALESCE(OLD.campaign_id, 0) AND kind = OLD.kind AND state = OLD.state;
    INSERT INTO delivery_counts (campaign_key, kind, state, n)
    VALUES (COALESCE(NEW.campaign_id, 0), NEW.kind, NEW.state, 1)
    ON CONFLICT (campaign_key, kind, state) DO UPDATE SET n = n + 1;
END;

-- An attempt ends when a claimed row gets its outcome with the server's reply.
CREATE TRIGGER delivery_replies AFTER UPDATE OF state ON deliveries
WHEN OLD.state = 'sending' AND NEW.state IN ('sent', 'deferred', 'failed')
     AND NEW.last_code IS NOT NULL
BEGIN
    INSERT INTO metric_totals (name, n)
    VALUES ('replies_' || CASE NEW.last_code / 100 WHEN 2 THEN '2xx' WHEN 4 THEN '4xx'
                                                   WHEN 5 THEN '5xx' ELSE 'other' END, 1)
    ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;

-- Subscribers.
CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers
BEGIN
    INSERT INTO subscriber_counts (state, source, n) VALUES (NEW.state, NEW.source, 1)
    ON CONFLICT (state, source) DO UPDATE SET n = n + 1;
    INSERT INTO metric_totals (name, n) VALUES ('signups', 1)
    ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers
BEGIN
    UPDATE subscriber_counts SET n = n - 1 WHERE state = OLD.state AND source = OLD.source;
END;

CREATE TRIGGER subscriber_counts_update AFTER UPDATE OF state, source ON subscribers
WHEN OLD.state IS NOT NEW.state OR OLD.source IS NOT NEW.source
BEGIN
    UPDATE subscriber_counts SET n = n - 1 WHERE state = OLD.state AND source = OLD.source;
    INSERT INTO subscriber_counts (state, source, n) VALUES (NEW.state, NEW.source, 1)
    ON CONFLICT (state, source) DO UPDATE SET n = n + 1;
END;

-- Subscriber events, by week.
CREATE TRIGGER subscriber_event_weeks_insert AFTER INSERT ON subscriber_events
BEGIN
    INSERT INTO subscriber_event_weeks (week_start, state, n)
    VALUES ((NEW.at - 345600000) / 604800000 * 604800000 + 345600000, NEW.state, 1)
    ON CONFLICT (week_start, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER subscriber_event_weeks_delete AFTER DELETE ON subscriber_events
BEGIN
    UPDATE subscriber_event_weeks SET n = n - 1
    WHERE week_start = (OLD.at - 345600000) / 604800000 * 604800000 + 345600000
      AND state = OLD.state;
END;

-- Bounce and complaint reports, by the recipient they name.
CREATE TRIGGER bounce_recipient_totals AFTER INSERT ON bounce_recipients
WHEN NEW.kind IN ('bounce', 'complaint')
BEGIN
    INSERT INTO metric_totals (name, n)
    VALUES (CASE WHEN NEW.kind = 'complaint' THEN 'complaints'
                 WHEN NEW.class = 'hard' THEN 'bounces_hard' ELSE 'bounces_soft' END, 1)
    ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;

-- What is already there.
INSERT INTO delivery_counts (campaign_key, kind, state, n)
SELECT COALESCE(campaign_id, 0), kind, state, COUNT(*) FROM deliveries GROUP BY 1, 2, 3;

INSERT INTO subscriber_counts (state, source, n)
SELECT state, source, COUNT(*) FROM subscribers GROUP BY state, source;

INSERT INTO subscriber_event_weeks (week_start, state, n)
SELECT (at - 345600000) / 604800000 * 604800000 + 345600000, state, COUNT(*)
FROM subscriber_events GROUP BY 1, 2;

INSERT INTO metric_totals (name, n)
SELECT 'signups', COUNT(*) FROM subscribers
UNION ALL
SELECT 'replies_' || CASE last_code / 100 WHEN 2 THEN '2xx' WHEN 4 THEN '4xx'
                                          WHEN 5 THEN '5xx' ELSE 'other' END, COUNT(*)
FROM deliveries
WHERE last_code IS NOT NULL AND state IN ('sent', 'deferred', 'failed')
GROUP BY 1
UNION ALL
SELECT CASE WHEN kind = 'complaint' THEN 'complaints'
            WHEN class = 'hard' THEN 'bounces_hard' ELSE 'bounces_soft' END, COUNT(*)
FROM bounce_recipients WHERE kind IN ('bounce', 'complaint')
GROUP BY 1;

-- A campaign's send rate reads the first and last sent_at of its sent rows:
-- with sent_at in the index they are its two ends, not a walk over every
-- sent row (600,000 of them, 0.7 s, on the dashboard bench's big
-- campaign). The index replaces (campaign_id, state), its prefix.
CREATE INDEX deliveries_by_campaign_sent_at ON deliveries (campaign_id, state, sent_at);
DROP INDEX deliveries_by_campaign;
