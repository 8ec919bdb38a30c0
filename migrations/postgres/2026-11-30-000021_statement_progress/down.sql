ALTER TABLE statement_imports DROP COLUMN error;
ALTER TABLE statement_imports DROP COLUMN done_rows;
ALTER TABLE statement_imports DROP COLUMN total_rows;
