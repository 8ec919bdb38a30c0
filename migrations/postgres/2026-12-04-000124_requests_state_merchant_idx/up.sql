-- A broad search of the request list (thousands of matching merchants) counts the
-- requests of a state by testing each one's merchant: with the merchant in the index
-- beside the state, that count reads no row of the table.
CREATE INDEX requests_state_merchant_idx ON requests (state, merchant_id);
