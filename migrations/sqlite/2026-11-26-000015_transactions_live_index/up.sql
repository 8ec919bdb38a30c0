-- Every listing (the pages, exports, the API) reads live rows of one business in time
-- order: an index of only those rows answers the API's COUNT(*) without reading the
-- table and pages without skipping deleted ones.
DROP INDEX transactions_business_time_idx;
CREATE INDEX transactions_business_live_idx ON transactions (business_id, occurred_at) WHERE deleted_at IS NULL;
