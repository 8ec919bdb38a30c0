DROP TABLE transaction_days;
