-- A claim and an outcome each rewrite a delivery row, and a row whose
-- indexed columns change gets a new entry in every index of the table
-- (no HOT update), so each index costs every message two inserts and their
-- WAL. Two go:
--
-- `deliveries_due` served only the transactional queue (campaign claims go
-- through `deliveries_by_campaign_sent_at`), so it now holds only
-- transactional rows.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at) WHERE campaign_id IS NULL;

-- `deliveries_by_subscriber` duplicated the unique key with its columns
-- swapped: with the subscriber first, the key serves both the snapshot's
-- uniqueness and the lookups by subscriber (erasure, history).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_campaign_id_subscriber_id_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_subscriber_campaign UNIQUE (subscriber_id, campaign_id);
DROP INDEX deliveries_by_subscriber;
