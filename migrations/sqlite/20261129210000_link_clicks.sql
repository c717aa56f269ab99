-- Link clicks ([tracking] clicks = true; README "Link clicks").
--
-- campaign_links: the item links Herald rewrote in one campaign's email,
-- numbered from 1 in the order they appear. The redirect at
-- /l/<campaign>/<link_index> sends only to a url found here, so it can
-- never be made to send anywhere else. The two counters go up as clicks
-- arrive: clicks a mail scanner or a bot can be told to have made, and the
-- rest.
CREATE TABLE campaign_links (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    link_index   INTEGER NOT NULL,
    url          TEXT NOT NULL,
    human_clicks INTEGER NOT NULL DEFAULT 0,
    bot_clicks   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (campaign_id, link_index)
);

-- One row per click, only with [tracking] per_subscriber = true: who
-- clicked which link when. Deleted with the subscriber (erase), and after
-- [tracking] per_subscriber_days by the click that finds them stale.
CREATE TABLE click_events (
    id            INTEGER PRIMARY KEY,
    link_id       INTEGER NOT NULL REFERENCES campaign_links (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    bot           INTEGER NOT NULL CHECK (bot IN (0, 1)),
    clicked_at    INTEGER NOT NULL
);

CREATE INDEX click_events_by_subscriber ON click_events (subscriber_id);
CREATE INDEX click_events_by_time ON click_events (clicked_at);
CREATE INDEX click_events_by_link ON click_events (link_id);
