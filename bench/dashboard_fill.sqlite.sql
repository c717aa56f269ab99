-- bench/dashboard.sh: a big list in SQLite. NOW_MS is replaced by the
-- script with the current time (Unix ms). Made in SQL, so the counters'
-- triggers run for every row as they would in real use.
--
-- 1,000,000 subscribers over two years (85% active, 5% pending, 6%
-- unsubscribed, 3% bounced, 1% complained; 60% import, 35% form, 5% cli),
-- their events, 50 weekly campaigns: 49 finished with 20,000 deliveries
-- each and the latest sending to all 1,000,000 (600,000 sent so far).
BEGIN;

WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 1000000)
INSERT INTO subscribers (id, email, state, source, unsubscribe_token, created_at, state_changed_at)
SELECT i, printf('reader%07d@example.com', i),
       CASE WHEN i % 100 < 85 THEN 'active' WHEN i % 100 < 90 THEN 'pending'
            WHEN i % 100 < 96 THEN 'unsubscribed' WHEN i % 100 < 99 THEN 'bounced'
            ELSE 'complained' END,
       CASE WHEN (i / 7) % 20 < 12 THEN 'import' WHEN (i / 7) % 20 < 19 THEN 'form' ELSE 'cli' END,
       printf('tok%07dabcdefghijklmnopqrstuvwxyz', i),
       NOW_MS - (1000000 - i) * 63072,
       NOW_MS - (1000000 - i) * 31536
FROM seq;

INSERT INTO subscriber_events (subscriber_id, state, reason, at)
SELECT id, CASE WHEN state = 'pending' THEN 'pending' ELSE 'active' END, 'bench', created_at
FROM subscribers;

INSERT INTO subscriber_events (subscriber_id, state, reason, at)
SELECT id, state, 'bench', state_changed_at FROM subscribers
WHERE state IN ('unsubscribed', 'bounced', 'complained');

WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50)
INSERT INTO campaigns (id, issue_slug, issue_number, issue_hash, subject, html, text, state,
                       created_at, finished_at, message_nonce)
SELECT n, printf('vol-%03d', n), n, 'bench', printf('Bench issue %d', n), '<p>bench</p>', 'bench',
       CASE WHEN n = 50 THEN 'sending' ELSE 'finished' END,
       NOW_MS - (50 - n) * 604800000,
       CASE WHEN n = 50 THEN NULL ELSE NOW_MS - (50 - n) * 604800000 + 3600000 END,
       printf('%032d', n)
FROM c;

WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 49),
     k(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM k WHERE j < 20000)
INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state, attempts,
                        next_attempt_at, message_id, sent_at, created_at, last_code,
                        report_kind, report_class)
SELECT n, (n - 1) * 20000 + j, 'issue', printf('reader%07d@example.com', (n - 1) * 20000 + j),
       CASE WHEN j % 200 = 0 THEN 'failed' WHEN j % 500 = 1 THEN 'skipped' ELSE 'sent' END,
       CASE WHEN j % 500 = 1 THEN 0 ELSE 1 END, 0,
       printf('<herald.%032d.%d@example.com>', n, (n - 1) * 20000 + j),
       CASE WHEN j % 200 = 0 OR j % 500 = 1 THEN NULL
            ELSE NOW_MS - (50 - n) * 604800000 + j * 100 END,
       NOW_MS - (50 - n) * 604800000,
       CASE WHEN j % 200 = 0 THEN 550 WHEN j % 500 = 1 THEN NULL ELSE 250 END,
       CASE WHEN j % 300 = 7 THEN 'bounce' WHEN j % 2000 = 11 THEN 'complaint' END,
       CASE WHEN j % 300 = 7 THEN 'hard' END
FROM c, k;

WITH RECURSIVE k(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM k WHERE j < 1000000)
INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state, attempts,
                        next_attempt_at, message_id, sent_at, created_at, last_code)
SELECT 50, j, 'issue', printf('reader%07d@example.com', j),
       CASE WHEN j <= 600000 THEN 'sent' ELSE 'queued' END,
       CASE WHEN j <= 600000 THEN 1 ELSE 0 END, 0,
       printf('<herald.%032d.%d@example.com>', 50, j),
       CASE WHEN j <= 600000 THEN NOW_MS - 600000 + j END,
       NOW_MS - 3600000,
       CASE WHEN j <= 600000 THEN 250 END
FROM k;

WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50),
     l(m) AS (SELECT 1 UNION ALL SELECT m + 1 FROM l WHERE m < 12)
INSERT INTO campaign_links (campaign_id, link_index, url, human_clicks, bot_clicks)
SELECT n, m, printf('https://example.com/story/%d/%d', n, m), (n * 37 + m * 101) % 900, m * 3
FROM c, l;

COMMIT;
ANALYZE;
