-- The dashboard counts a state's changes in a time range (unsubscribes in
-- the week after a campaign started) without reading the whole history.
CREATE INDEX subscriber_events_by_state ON subscriber_events (state, at);
