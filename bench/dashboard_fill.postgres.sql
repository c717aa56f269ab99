-- bench/dashboard.sh: the same big list as dashboard_fill.sqlite.sql (see
-- its comments), in PostgreSQL. NOW_MS is replaced by the script.
BEGIN;

INSERT INTO subscribers (id, email, state, source, unsubscribe_token, created_at, state_changed_at)
SELECT i, 'reader' || lpad(i::text, 7, '0') || '@example.com',
       CASE WHEN i % 100 < 85 THEN 'active' WHEN i % 100 < 90 THEN 'pending'
            WHEN i % 100 < 96 THEN 'unsubscribed' WHEN i % 100 < 99 THEN 'bounced'
            ELSE 'complained' END,
       CASE WHEN (i / 7) % 20 < 12 THEN 'import' WHEN (i / 7) % 20 < 19 THEN 'form' ELSE 'cli' END,
       'tok' || lpad(i::text, 7, '0') || 'abcdefghijklmnopqrstuvwxyz',
       NOW_MS - (1000000 - i) * 63072,
       NOW_MS - (1000000 - i) * 31536
FROM generate_series(1::bigint, 1000000) AS i;
SELECT setval(pg_get_serial_sequence('subscribers', 'id'), 1000001, false);

INSERT INTO subscriber_events (subscriber_id, state, reason, at)
SELECT id, CASE WHEN state = 'pending' THEN 'pending' ELSE 'active' END, 'bench', created_at
FROM subscribers;

INSERT INTO subscriber_events (subscriber_id, state, reason, at)
SELECT id, state, 'bench', state_changed_at FROM subscribers
WHERE state IN ('unsubscribed', 'bounced', 'complained');

INSERT INTO campaigns (id, issue_slug, issue_number, issue_hash, subject, html, text, state,
                       created_at, finished_at, message_nonce)
SELECT n, 'vol-' || lpad(n::text, 3, '0'), n, 'bench', 'Bench issue ' || n, '<p>bench</p>', 'bench',
       CASE WHEN n = 50 THEN 'sending' ELSE 'finished' END,
       NOW_MS - (50 - n) * 604800000::bigint,
       CASE WHEN n = 50 THEN NULL ELSE NOW_MS - (50 - n) * 604800000::bigint + 3600000 END,
       lpad(n::text, 32, '0')
FROM generate_series(1::bigint, 50) AS n;
SELECT setval(pg_get_serial_sequence('campaigns', 'id'), 51, false);

INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state, attempts,
                        next_attempt_at, message_id, sent_at, created_at, last_code,
                        report_kind, report_class)
SELECT n, (n - 1) * 20000 + j, 'issue', 'reader' || lpad(((n - 1) * 20000 + j)::text, 7, '0') || '@example.com',
       CASE WHEN j % 200 = 0 THEN 'failed' WHEN j % 500 = 1 THEN 'skipped' ELSE 'sent' END,
       CASE WHEN j % 500 = 1 THEN 0 ELSE 1 END, 0,
       '<herald.' || lpad(n::text, 32, '0') || '.' || ((n - 1) * 20000 + j) || '@example.com>',
       CASE WHEN j % 200 = 0 OR j % 500 = 1 THEN NULL
            ELSE NOW_MS - (50 - n) * 604800000::bigint + j * 100 END,
       NOW_MS - (50 - n) * 604800000::bigint,
       CASE WHEN j % 200 = 0 THEN 550 WHEN j % 500 = 1 THEN NULL ELSE 250 END,
       CASE WHEN j % 300 = 7 THEN 'bounce' WHEN j % 2000 = 11 THEN 'complaint' END,
       CASE WHEN j % 300 = 7 THEN 'hard' END
FROM generate_series(1::bigint, 49) AS n, generate_series(1::bigint, 20000) AS j;

INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state, attempts,
                        next_attempt_at, message_id, sent_at, created_at, last_code)
SELECT 50, j, 'issue', 'reader' || lpad(j::text, 7, '0') || '@example.com',
       CASE WHEN j <= 600000 THEN 'sent' ELSE 'queued' END,
       CASE WHEN j <= 600000 THEN 1 ELSE 0 END, 0,
       '<herald.' || lpad('50', 32, '0') || '.' || j || '@example.com>',
       CASE WHEN j <= 600000 THEN NOW_MS - 600000 + j END,
       NOW_MS - 3600000,
       CASE WHEN j <= 600000 THEN 250 END
FROM generate_series(1::bigint, 1000000) AS j;

INSERT INTO campaign_links (campaign_id, link_index, url, human_clicks, bot_clicks)
SELECT n, m, 'https://example.com/story/' || n || '/' || m, (n * 37 + m * 101) % 900, m * 3
FROM generate_series(1::bigint, 50) AS n, generate_series(1::bigint, 12) AS m;

COMMIT;
VACUUM ANALYZE;
