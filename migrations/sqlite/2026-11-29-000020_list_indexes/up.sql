-- The transactions page sums money in and out over the same live rows it lists:
-- with the amount in the index the sums read the index alone, never the table; the id
-- before it keeps the index in the page's order (time, then id).
DROP INDEX transactions_business_live_idx;
CREATE INDEX transactions_business_live_idx ON transactions (business_id, occurred_at, id, amount) WHERE deleted_at IS NULL;
-- The request list is in waiting order (oldest state change first): read in index
-- order, a page stops after its rows instead of sorting every matching request.
CREATE INDEX requests_waiting_idx ON requests (state_since, id);
-- The dashboard counts open requests per state and partner, with the oldest of each:
-- this index answers it in order, without the table.
CREATE INDEX requests_state_partner_idx ON requests (state, partner_id, state_since);
