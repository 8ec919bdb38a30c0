ALTER TABLE transaction_days DROP COLUMN money_out;
ALTER TABLE transaction_days DROP COLUMN money_in;
