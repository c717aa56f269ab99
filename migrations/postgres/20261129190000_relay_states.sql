-- Each relay's circuit breaker, as the sending run that last changed it
-- left it: written on every transition (closed, open, half-open), read by
-- `herald status` (another process) and by the next run, which starts from
-- it instead of sending into a relay another worker just found dead.
--
-- relay is the relay's name ([[smtp.relays]] name, or host:port). A row
-- changes only for a newer transition (changed_at), so two workers'
-- writes never leave an older state on top.
CREATE TABLE relay_states (
    relay TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half-open')),
    reason TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    -- When an open breaker lets a probe message through.
    open_until BIGINT,
    -- The sending run (claimer id) that made the change.
    changed_by TEXT NOT NULL
);
