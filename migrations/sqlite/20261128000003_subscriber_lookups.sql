-- Lookups the subscriber side makes by subscriber rather than by campaign.
--
-- Deleting a subscriber (an erase on request) makes SQLite null out
-- deliveries.subscriber_id (ON DELETE SET NULL); without an index led by
-- subscriber_id, every such delete scans the whole delivery history. The
-- erase also scrubs that subscriber's delivery rows first, by this index.
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id);
