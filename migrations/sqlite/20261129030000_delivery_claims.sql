-- Who holds a claimed delivery: a random id per sending run. Outcomes land
-- only on rows their run still holds, and a run renews the lease of its
-- own rows, so a row whose lease lapsed (its run died, on any machine) can
-- be claimed by another without the first one's late outcome landing on it.
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
