-- Counters for the dashboard and /metrics: the same tables as the SQLite
-- migration of the same name (see its comments), kept here by
-- statement-level triggers with transition tables. The send path changes
-- deliveries a batch at a time; a row trigger would run its upserts once
-- per row, these run once per statement over the rows it changed.
--
-- Upserts go in key order, so two transactions touching the same counters
-- lock them in the same order and cannot deadlock on them.

CREATE TABLE delivery_counts (
    campaign_key BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (campaign_key, kind, state)
);

CREATE TABLE subscriber_counts (
    state  TEXT NOT NULL,
    source TEXT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (state, source)
);

CREATE TABLE subscriber_event_weeks (
    week_start BIGINT NOT NULL,
    state      TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (week_start, state)
);

CREATE TABLE metric_totals (
    name TEXT PRIMARY KEY,
    n    BIGINT NOT NULL
);

-- Monday 00:00 UTC of the week holding `at` (Unix ms): Monday 1970-01-05
-- is 345,600,000 ms after the epoch, a week 604,800,000 ms.
CREATE FUNCTION herald_week_start(at BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (at - 345600000) / 604800000 * 604800000 + 345600000;

CREATE FUNCTION herald_reply_class(code BIGINT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'replies_' || CASE code / 100 WHEN 2 THEN '2xx' WHEN 4 THEN '4xx'
                                     WHEN 5 THEN '5xx' ELSE 'other' END;

-- Deliveries: the change in each (queue, kind, state) is what the new rows
-- add minus what the old rows take away; keys whose change is zero (a
-- lease renewal, a report on a delivery) are not written at all.
CREATE FUNCTION herald_delivery_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO delivery_counts AS c (campaign_key, kind, state, n)
        SELECT COALESCE(campaign_id, 0), kind, state, COUNT(*)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (campaign_key, kind, state) DO UPDATE SET n = c.n + EXCLUDED.n;
        -- A row that arrives with its reply already (a copied history)
        -- counts it once.
        INSERT INTO metric_totals AS t (name, n)
        SELECT herald_reply_class(last_code), COUNT(*) FROM new_rows
        WHERE last_code IS NOT NULL AND state IN ('sent', 'deferred', 'failed')
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (name) DO UPDATE SET n = t.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE delivery_counts c SET n = c.n - gone.n
        FROM (SELECT COALESCE(campaign_id, 0) AS campaign_key, kind, state, COUNT(*) AS n
              FROM old_rows GROUP BY 1, 2, 3) gone
        WHERE c.campaign_key = gone.campaign_key AND c.kind = gone.kind
          AND c.state = gone.state;
    ELSE
        INSERT INTO delivery_counts AS c (campaign_key, kind, state, n)
        SELECT campaign_key, kind, state, SUM(delta) FROM (
            SELECT COALESCE(campaign_id, 0) AS campaign_key, kind, state, 1 AS delta
            FROM new_rows
            UNION ALL
            SELECT COALESCE(campaign_id, 0), kind, state, -1 FROM old_rows
        ) change
        GROUP BY 1, 2, 3 HAVING SUM(delta) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (campaign_key, kind, state) DO UPDATE SET n = c.n + EXCLUDED.n;
        -- An attempt ends when a claimed row gets its outcome with the
        -- server's reply.
        INSERT INTO metric_totals AS t (name, n)
        SELECT herald_reply_class(n.last_code), COUNT(*)
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.state = 'sending' AND n.state IN ('sent', 'deferred', 'failed')
          AND n.last_code IS NOT NULL
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (name) DO UPDATE SET n = t.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$;

-- One trigger per event: a trigger with transition tables may have only one.
CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_delivery_counts();

CREATE TRIGGER delivery_counts_update AFTER UPDATE ON deliveries
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_delivery_counts();

CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_delivery_counts();

-- Subscribers, the same way.
CREATE FUNCTION herald_subscriber_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO subscriber_counts AS c (state, source, n)
        SELECT state, source, COUNT(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (state, source) DO UPDATE SET n = c.n + EXCLUDED.n;
        INSERT INTO metric_totals AS t (name, n)
        SELECT 'signups', COUNT(*) FROM new_rows HAVING COUNT(*) > 0
        ON CONFLICT (name) DO UPDATE SET n = t.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE subscriber_counts c SET n = c.n - gone.n
        FROM (SELECT state, source, COUNT(*) AS n FROM old_rows GROUP BY 1, 2) gone
        WHERE c.state = gone.state AND c.source = gone.source;
    ELSE
        INSERT INTO subscriber_counts AS c (state, source, n)
        SELECT state, source, SUM(delta) FROM (
            SELECT state, source, 1 AS delta FROM new_rows
            UNION ALL
            SELECT state, source, -1 FROM old_rows
        ) change
        GROUP BY 1, 2 HAVING SUM(delta) <> 0 ORDER BY 1, 2
        ON CONFLICT (state, source) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_subscriber_counts();

CREATE TRIGGER subscriber_counts_update AFTER UPDATE ON subscribers
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_subscriber_counts();

CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_subscriber_counts();

-- Subscriber events by week. Events are only inserted, and deleted with
-- their subscriber (ON DELETE CASCADE, whose delete fires this too).
CREATE FUNCTION herald_subscriber_event_weeks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO subscriber_event_weeks AS w (week_start, state, n)
        SELECT herald_week_start(at), state, COUNT(*) FROM new_rows
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (week_start, state) DO UPDATE SET n = w.n + EXCLUDED.n;
    ELSE
        UPDATE subscriber_event_weeks w SET n = w.n - gone.n
        FROM (SELECT herald_week_start(at) AS week_start, state, COUNT(*) AS n
              FROM old_rows GROUP BY 1, 2) gone
        WHERE w.week_start = gone.week_start AND w.state = gone.state;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER subscriber_event_weeks_insert AFTER INSERT ON subscriber_events
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_subscriber_event_weeks();

CREATE TRIGGER subscriber_event_weeks_delete AFTER DELETE ON subscriber_events
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_subscriber_event_weeks();

-- Bounce and complaint reports, by the recipient they name.
CREATE FUNCTION herald_bounce_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_totals AS t (name, n)
    SELECT CASE WHEN kind = 'complaint' THEN 'complaints'
                WHEN class = 'hard' THEN 'bounces_hard' ELSE 'bounces_soft' END, COUNT(*)
    FROM new_rows WHERE kind IN ('bounce', 'complaint')
    GROUP BY 1 ORDER BY 1
    ON CONFLICT (name) DO UPDATE SET n = t.n + EXCLUDED.n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bounce_recipient_totals AFTER INSERT ON bounce_recipients
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION herald_bounce_totals();

-- What is already there.
INSERT INTO delivery_counts (campaign_key, kind, state, n)
SELECT COALESCE(campaign_id, 0), kind, state, COUNT(*) FROM deliveries GROUP BY 1, 2, 3;

INSERT INTO subscriber_counts (state, source, n)
SELECT state, source, COUNT(*) FROM subscribers GROUP BY state, source;

INSERT INTO subscriber_event_weeks (week_start, state, n)
SELECT herald_week_start(at), state, COUNT(*) FROM subscriber_events GROUP BY 1, 2;

INSERT INTO metric_totals (name, n)
SELECT 'signups', COUNT(*) FROM subscribers
UNION ALL
SELECT herald_reply_class(last_code), COUNT(*) FROM deliveries
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
