-- The first lines of each list of a reconciliation's outcome, as its page shows them:
-- at a million lines, reading them from the whole saved outcome took half a second a
-- view. Outcomes saved before are read whole, as before.
ALTER TABLE reconciliations ADD COLUMN result_head TEXT;
