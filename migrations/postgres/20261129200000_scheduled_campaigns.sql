-- Scheduled sends: a campaign may wait, rendered, for its time
-- (`herald send --at`), or be cancelled before it starts. A scheduled
-- campaign has no recipients yet: they are taken when it starts.
ALTER TABLE campaigns DROP CONSTRAINT campaigns_state_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_state_check
    CHECK (state IN ('scheduled', 'sending', 'paused', 'finished', 'cancelled'));
-- When a scheduled campaign starts (or started); NULL for one sent at once.
-- No index: campaigns are one row per send, a handful a week.
ALTER TABLE campaigns ADD COLUMN scheduled_at BIGINT;
