DROP INDEX requests_merchant_idx;
DROP TRIGGER request_counts_update ON requests;
DROP TRIGGER request_counts_insert_delete ON requests;
DROP FUNCTION request_counts_keep();
DROP TABLE request_counts;
